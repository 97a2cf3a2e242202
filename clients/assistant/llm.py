"""Optional phrasing by a language model behind an OpenAI-compatible chat endpoint.

The model only rewords: it is given the question and the facts the retrieval answerer
found, and its reply is used only if it passes the same checks as a template answer —
every number in it appears in those facts, it is in the question's language, it fits
the comment limit. Otherwise (or on any error, or after `timeout_s`) the template
answer is posted. Product references (`[product:ID]`) are added by the assistant, not
by the model.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol

from barrage.clients.assistant.answerer import MAX_CHARS, Answer
from barrage.clients.assistant.grounding import PRODUCT_REF, ungrounded
from barrage.clients.assistant.text import cjk_count

log = logging.getLogger("barrage.assistant")

SYSTEM_PROMPT = """You are the shopping assistant of a live-shopping room. Reply to the viewer's \
question in one or two short, friendly sentences, in {language}. Use ONLY the facts given: never \
add a price, number, size, ingredient, policy or promise that is not in them, and do not mention \
that you were given facts. If the facts do not answer the question, say briefly that you are not sure."""


class Phraser(Protocol):
    """Rewords a grounded answer; None keeps the template."""

    async def phrase(self, answer: Answer) -> str | None: ...


def acceptable(text: str, answer: Answer) -> str | None:
    """The phrased text if it may be posted in place of the template answer, else None."""
    text = PRODUCT_REF.sub("", text).strip()
    if not text or len(text) > MAX_CHARS - 60:
        return None
    if ungrounded(text, answer.sources):
        return None
    cjk = cjk_count(text)
    if (answer.lang == "zh") != (cjk >= 2):
        return None
    refs = " ".join(f"[product:{pid}]" for pid in answer.products)
    return f"{text} {refs}".strip()


@dataclass
class ChatPhraser:
    """Calls `POST {url}/chat/completions` (OpenAI-compatible) with the facts.

    `url` is the API base ("http://127.0.0.1:8000/v1") or the full completions URL.
    """

    url: str
    model: str = "default"
    api_key: str | None = None
    timeout_s: float = 0.6
    max_tokens: int = 160
    temperature: float = 0.3

    def endpoint(self) -> str:
        url = self.url.rstrip("/")
        return url if url.endswith("/chat/completions") else f"{url}/chat/completions"

    def request_body(self, answer: Answer) -> dict[str, Any]:
        language = "Simplified Chinese" if answer.lang == "zh" else "English"
        facts = "\n".join(f"- {fact.text(answer.lang)}" for fact in answer.facts)
        return {
            "model": self.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT.format(language=language)},
                {"role": "user", "content": f"Facts:\n{facts}\n\nViewer's question: {answer.question}"},
            ],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }

    def _post(self, body: dict[str, Any]) -> str:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(
            self.endpoint(), data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # The operator's URL.
            reply = json.loads(response.read().decode("utf-8"))
        content = reply["choices"][0]["message"]["content"]
        if not isinstance(content, str):
            raise TypeError("completion content is not text")
        return content

    async def phrase(self, answer: Answer) -> str | None:
        if answer.outcome != "answer" or not answer.facts:
            return None
        try:
            content = await asyncio.wait_for(asyncio.to_thread(self._post, self.request_body(answer)), self.timeout_s)
        except (TimeoutError, OSError, urllib.error.URLError, ValueError, KeyError, IndexError, TypeError) as exc:
            log.info("phrasing failed, using the template: %r", exc)
            return None
        text = acceptable(content, answer)
        if text is None:
            log.info("phrased answer rejected (ungrounded or wrong language): %r", content)
        return text
