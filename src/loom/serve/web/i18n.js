// Interface strings, English and Chinese. Elements carry data-i18n="key" (text) or
// data-i18n-placeholder="key"; the switch re-renders them and remembers the choice.
const STRINGS = {
  en: {
    tab_chat: "Chat", tab_classify: "Classify", tab_kb: "Knowledge bases", tab_writing: "Writing", tab_models: "Models",
    tab_train: "Train", train_kind: "What", train_sft: "Chat model (instruction tuning)", train_classify: "Text classifier",
    train_base: "Base", train_data: "Data", epochs: "Epochs", learning_rate: "Learning rate", train_start: "Start training",
    train_hint: "Chat data: one JSON conversation per line ({\"messages\": [...]}, Alpaca or ShareGPT). Classifier data: .csv with text,label.",
    train_eval: "Evaluate", train_chat: "Chat with it", train_jobs: "Jobs", stopped: "stopped", failed_job: "failed",
    held_out: "held-out answers containing the reference", no_file: "Choose a data file first.",
    api_key: "API key", model: "Model", temperature: "Temperature", max_tokens: "Max tokens", system_prompt: "System prompt",
    message: "Message", type_message: "Type a message", send: "Send", stop: "Stop", reset: "Reset",
    copy_curl: "Copy as curl", copy_python: "Copy as Python", classifier: "Classifier", texts_one_per_line: "Texts, one per line",
    classify: "Classify", or_file: "or a .txt/.csv file", download_csv: "Download CSV", kb: "Knowledge base", new_kb: "New",
    create: "Create", drop_files: "Drop .txt .md .html .csv files here, or choose them:", search: "Search",
    ask_support: "Ask the support assistant", ask: "Ask", cited_passage: "Cited passage", handoffs: "Hand-offs",
    task: "Task", summarize: "Summarise", translate: "Translate", write: "Write", none_extractive: "(none: extractive)",
    sentences: "Sentences", mode: "Mode", target: "To", kind: "Kind", input_text: "Text (or topic for Write)", run: "Run",
    refresh: "Refresh", lang_button: "中文", uploaded: "uploaded", chunks: "chunks", failed: "failed",
    empty: "Please type something first.", too_big: "This file is too large (limit 4 MB).", bad_type: "This file type is not supported here.",
    no_hits: "No results.", label: "Label", probability: "Probability", text: "Text",
    runs: "Training runs", run_name: "Run", steps: "Steps", status: "Status", finished: "finished", running: "running",
    train_loss: "train loss", val_loss: "validation loss", explained: "Words that pushed the decision (green: for, red: against):",
    tab_keys: "Keys", admin_only: "Managing keys needs an admin key: enter one above.", key_name: "Name", admin: "Admin",
    revoke: "Revoke", revoked: "revoked", active: "active", requests: "Requests", tokens: "Tokens",
    new_key: "New key (shown once, copy it now):", report: "Report", method: "Method", tone: "Tone", length: "Length",
    keywords: "Keywords", glossary: 'Glossary (translate): one "source,target" per line', report_file: "Data for a report (.csv or .json)",
    need_data: "Choose a .csv or .json data file first.", bad_glossary: "Glossary lines must look like: source,target",
    evals: "Evaluation reports", accuracy: "Accuracy", macro_f1: "Macro F1", examples: "Examples", file: "File",
    show_chunks: "Show chunks", new_conversation: "New conversation", klass: "Class", precision: "Precision", recall: "Recall", support: "Support",
    answer_faq: "Answered from the FAQ", answer_extractive: "Quoted from the best passage", answer_generated: "Written from the best passage",
    answer_handoff: "Handed off to a person: the knowledge base does not cover this", confidence: "confidence",
  },
  zh: {
    tab_chat: "对话", tab_classify: "分类", tab_kb: "知识库", tab_writing: "写作", tab_models: "模型",
    tab_train: "训练", train_kind: "类型", train_sft: "对话模型（指令微调）", train_classify: "文本分类器",
    train_base: "基座", train_data: "数据", epochs: "轮数", learning_rate: "学习率", train_start: "开始训练",
    train_hint: "对话数据：每行一个 JSON 对话（{\"messages\": [...]}、Alpaca 或 ShareGPT）。分类数据：含 text,label 两列的 .csv。",
    train_eval: "评估", train_chat: "和它对话", train_jobs: "训练任务", stopped: "已停止", failed_job: "失败",
    held_out: "留出集回答中包含参考答案的比例", no_file: "请先选择数据文件。",
    api_key: "API 密钥", model: "模型", temperature: "温度", max_tokens: "最大长度", system_prompt: "系统提示词",
    message: "消息", type_message: "输入消息", send: "发送", stop: "停止", reset: "清空",
    copy_curl: "复制为 curl", copy_python: "复制为 Python", classifier: "分类器", texts_one_per_line: "文本，每行一条",
    classify: "分类", or_file: "或上传 .txt/.csv 文件", download_csv: "下载 CSV", kb: "知识库", new_kb: "新建",
    create: "创建", drop_files: "把 .txt .md .html .csv 文件拖到这里，或选择文件：", search: "搜索",
    ask_support: "向客服助手提问", ask: "提问", cited_passage: "引用的段落", handoffs: "转人工记录",
    task: "任务", summarize: "摘要", translate: "翻译", write: "写作", none_extractive: "（无：抽取式）",
    sentences: "句数", mode: "方式", target: "目标语言", kind: "体裁", input_text: "文本（写作时填主题）", run: "运行",
    refresh: "刷新", lang_button: "English", uploaded: "已上传", chunks: "个片段", failed: "失败",
    empty: "请先输入内容。", too_big: "文件太大（上限 4 MB）。", bad_type: "不支持这种文件类型。",
    no_hits: "没有结果。", label: "标签", probability: "概率", text: "文本",
    runs: "训练记录", run_name: "训练", steps: "步数", status: "状态", finished: "已完成", running: "进行中",
    train_loss: "训练损失", val_loss: "验证损失", explained: "影响判断的词（绿色：支持，红色：反对）：",
    tab_keys: "密钥", admin_only: "管理密钥需要管理员密钥：请在上方输入。", key_name: "名称", admin: "管理员",
    revoke: "吊销", revoked: "已吊销", active: "有效", requests: "请求数", tokens: "词元数",
    new_key: "新密钥（只显示这一次，请立即复制）：", report: "报告", method: "方法", tone: "语气", length: "长度",
    keywords: "关键词", glossary: "术语表（翻译用）：每行“原文,译文”", report_file: "报告数据（.csv 或 .json）",
    need_data: "请先选择 .csv 或 .json 数据文件。", bad_glossary: "术语表每行应为：原文,译文",
    evals: "评测报告", accuracy: "准确率", macro_f1: "宏平均 F1", examples: "样本数", file: "文件",
    show_chunks: "查看片段", new_conversation: "新对话", klass: "类别", precision: "精确率", recall: "召回率", support: "样本数",
    answer_faq: "来自常见问题", answer_extractive: "摘自最相关的段落", answer_generated: "根据最相关的段落撰写",
    answer_handoff: "已转人工：知识库里没有这方面的内容", confidence: "置信度",
  },
};
let LANG = localStorage.getItem("loom-lang") || (navigator.language.startsWith("zh") ? "zh" : "en");
function t(key) { return (STRINGS[LANG] && STRINGS[LANG][key]) || STRINGS.en[key] || key; }
function applyLanguage(lang) {
  LANG = lang;
  localStorage.setItem("loom-lang", lang);
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.querySelectorAll("[data-i18n-placeholder]").forEach((el) => { el.placeholder = t(el.dataset.i18nPlaceholder); });
  document.getElementById("lang").textContent = t("lang_button");
}
