"""Support conversations kept in the knowledge base: every turn, its citations, confidence and
hand-off flag; hand-offs are what a person picks up. A mixin of KnowledgeBase (store.py)."""

from __future__ import annotations

import json
import time

from loom import atomic


class Conversations:
    def log_turn(self, conversation: str, role: str, content: str, citations: list | None = None,
                 confidence: float | None = None, handoff: bool = False) -> None:
        with atomic.guarded(self.path), self.connect() as db:
            db.execute("INSERT INTO turns (conversation, ts, role, content, citations, confidence, handoff) VALUES (?,?,?,?,?,?,?)",
                       (conversation, time.time(), role, content, json.dumps(citations, ensure_ascii=False) if citations else None,
                        confidence, int(handoff)))

    def handoffs(self) -> list[dict]:
        with self.connect() as db:
            rows = db.execute("SELECT t.conversation, t.ts, t.confidence, (SELECT content FROM turns u WHERE u.conversation = "
                              "t.conversation AND u.id < t.id AND u.role = 'user' ORDER BY u.id DESC LIMIT 1) FROM turns t "
                              "WHERE t.handoff = 1 ORDER BY t.id").fetchall()
        return [{"conversation": r[0], "ts": r[1], "confidence": r[2], "question": r[3]} for r in rows]
