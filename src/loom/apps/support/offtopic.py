"""Questions that a shop's or a product's knowledge base does not answer, in Chinese and English.

Answerability is calibrated per knowledge base against these (see answerable.py): how similar do
questions the KB cannot answer look to its passages, under its encoder? They span everyday topics
(weather, cooking, sport, health, travel, money, law, school, culture, computing) and the company
questions customers ask that product documentation rarely covers (investors, jobs, offices, press).
Written for Loom; none of them is taken from a benchmark set.
"""

ZH = (
    "今天上海会下雨吗？", "这周末适合去爬山吗？", "台风什么时候登陆？",
    "宫保鸡丁需要放哪些调料？", "米饭怎么煮才好吃？", "怎么做蛋炒饭？",
    "昨晚的足球比赛谁赢了？", "NBA总冠军是哪个队？", "马拉松要跑多少公里？",
    "感冒了应该吃什么药？", "每天睡几个小时比较健康？", "血压高要注意什么？",
    "去云南旅游要带什么？", "护照怎么办理？", "去日本需要签证吗？",
    "基金和股票哪个风险大？", "房贷利率现在是多少？", "人民币兑美元汇率是多少？",
    "离婚财产怎么分？", "交通违章怎么查询？", "劳动合同到期不续签有补偿吗？",
    "高考一共考几门？", "怎么快速背英语单词？", "小学生作业太多怎么办？",
    "《红楼梦》的作者是谁？", "唐朝是哪一年建立的？", "帮我讲一个笑话。",
    "Python怎么读取文件？", "电脑蓝屏怎么办？", "怎么注册一个邮箱？",
    "你们公司是哪一年成立的？", "你们的创始人叫什么名字？", "公司总部在哪个城市？",
    "你们公司有多少员工？", "你们融资到第几轮了？", "媒体采访应该联系谁？",
    "你们招不招实习生？", "我想和你们谈商务合作。", "你们的年营业额是多少？", "你们赞助体育比赛吗？",
)
EN = (
    "Will it rain in London this weekend?", "Is it a good day for a picnic?", "When does the hurricane season start?",
    "How long should I boil an egg?", "What goes into a Caesar salad?", "How do I make pancakes?",
    "Who won the football match last night?", "How many players are on a basketball team?", "How long is a marathon?",
    "What should I take for a headache?", "How many hours of sleep do adults need?", "Is coffee bad for my heart?",
    "What should I pack for a trip to Iceland?", "How do I renew my passport?", "Do I need a visa to visit Japan?",
    "Should I invest in bonds or shares?", "What is the current interest rate on savings?", "How much is one euro in dollars?",
    "How do I contest a parking ticket?", "Can my landlord raise the rent mid-lease?", "How do I write a will?",
    "How can I learn French quickly?", "What is the square root of 144?", "Who wrote Pride and Prejudice?",
    "When did the Roman Empire fall?", "Tell me a joke.", "Summarise the plot of Hamlet.",
    "How do I reverse a list in Python?", "Why is my laptop so slow?", "How do I set up a new email account?",
    "When was your company founded?", "Who founded the company?", "Where is your head office?",
    "How many employees do you have?", "Who are your investors?", "Who handles press enquiries?",
    "Do you offer internships?", "I would like to discuss a business partnership.", "What was your revenue last year?",
    "Do you sponsor sports events?",
)
