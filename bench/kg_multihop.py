"""Multi-hop questions with and without the knowledge graph, same knowledge base, same run.

bench/data/kg_multihop/: 79 one-entity pages (Chinese and English) and 40 questions, each needing
two facts from two pages ("马云创立的公司总部在哪个城市？": 马云 founded 阿里巴巴 on one page, 阿里巴巴's
headquarters on another). The support answerer (extractive, no chat model) answers each twice: from
the knowledge base alone, and with the graph facts around the question's entities (`--graph`). An
answer is right when it contains the gold answer and was not handed off.
Goal (issue 19): accuracy with the graph > without.

    python bench/kg_multihop.py
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).parent / "data" / "kg_multihop"


def main() -> None:
    os.environ["LOOM_HOME"] = tempfile.mkdtemp(prefix="loom-kg-multihop-")
    from loom.apps.kg.build import build_from_kb
    from loom.apps.support.answer import SupportTurn
    from loom.apps.support.store import KnowledgeBase
    from loom.config import SupportConfig

    kb = KnowledgeBase.create("facts", "e5")
    kb.add_paths([str(DATA / "docs")])
    start = time.perf_counter()
    report = build_from_kb("facts")
    print(f"graph: {report['entities']} entities, {report['relations']} relations from {report['documents']} pages "
          f"in {time.perf_counter() - start:.1f} s")
    questions = [json.loads(line) for line in (DATA / "questions.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    right = {False: {"zh": 0, "en": 0}, True: {"zh": 0, "en": 0}}
    handoffs = {False: 0, True: 0}
    for q in questions:
        for graph in (False, True):
            turn = SupportTurn(kb, q["question"], [], SupportConfig(graph=graph))
            text = "".join(turn)
            handoffs[graph] += turn.handoff
            ok = (not turn.handoff) and q["answer"].casefold() in text.casefold()
            right[graph][q["lang"]] += ok
            if graph and not ok:
                print(f"  missed with the graph: {q['question']} (gold {q['answer']}; facts: "
                      f"{'; '.join(f['text'] for f in turn.graph_facts) or 'none'})")
    n = {lang: sum(q["lang"] == lang for q in questions) for lang in ("zh", "en")}
    for graph in (False, True):
        total = sum(right[graph].values())
        print(f"{'with the graph   ' if graph else 'without the graph'}: {total}/{len(questions)} right "
              f"(zh {right[graph]['zh']}/{n['zh']}, en {right[graph]['en']}/{n['en']}), {handoffs[graph]} handed off")
    without, with_graph = sum(right[False].values()), sum(right[True].values())
    print(f"ratio {with_graph / max(without, 1):.2f}x questions answered with the graph vs without "
          f"({with_graph / len(questions):.3f} vs {without / len(questions):.3f}; goal: with > without): "
          f"{'PASS' if with_graph > without else 'FAIL'}")


if __name__ == "__main__":
    main()
