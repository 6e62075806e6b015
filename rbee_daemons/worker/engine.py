"""The inference engine: one llama-cpp-python model, used by one thread at a time."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rbee_daemons.errors import ModelError
from rbee_daemons.worker.chat import ChatTemplate

logger = logging.getLogger(__name__)


@dataclass
class GenerationRequest:
    prompt: str
    max_tokens: int
    temperature: float
    top_p: float = 1.0
    top_k: int = 40
    seed: int | None = None
    stop: list[str] = field(default_factory=list)


@dataclass
class GenerationResult:
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    # Time from the start of generation to the first token, which includes prompt processing.
    prompt_ms: float
    generation_ms: float

    def usage(self) -> dict[str, Any]:
        decode_seconds = self.generation_ms / 1000
        rate = self.completion_tokens / decode_seconds if decode_seconds > 0 else 0.0
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "timings": {
                "prompt_ms": round(self.prompt_ms, 2),
                "generation_ms": round(self.generation_ms, 2),
                "tokens_per_second": round(rate, 2),
            },
        }


class LlamaEngine:
    """Loads a GGUF with llama-cpp-python and streams completions from it."""

    def __init__(self, model_path: Path, *, n_ctx: int = 4096, n_threads: int | None = None):
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self._llama: Any = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._llama is not None

    def load(self) -> None:
        """Load the model; blocking. Raise ModelError when the file is missing or invalid."""
        if not self.model_path.is_file():
            raise ModelError(f"Model file {str(self.model_path)!r} does not exist.")
        from llama_cpp import Llama  # imported here: loading the native library takes time

        try:
            self._llama = Llama(
                model_path=str(self.model_path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelError(
                f"llama.cpp could not load {str(self.model_path)!r}: {exc}. "
                "Is it a valid GGUF file?"
            ) from exc

    def chat_template(self) -> ChatTemplate:
        """Return the GGUF's chat template with its BOS and EOS token texts."""
        metadata = self._llama.metadata or {}
        return ChatTemplate(
            metadata.get("tokenizer.chat_template"),
            bos_token=self._token_text(self._llama.token_bos()),
            eos_token=self._token_text(self._llama.token_eos()),
        )

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return bytes(self._llama.detokenize([token], special=True)).decode("utf-8", "replace")

    def count_tokens(self, text: str) -> int:
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    def generate(
        self,
        request: GenerationRequest,
        on_token: Callable[[str], None],
        cancelled: threading.Event,
    ) -> GenerationResult:
        """Generate tokens, calling `on_token(text)` for each; blocking.

        Checks `cancelled` before each token, so a cancel stops generation within one token.
        """
        with self._lock:
            return self._generate_locked(request, on_token, cancelled)

    def _generate_locked(
        self,
        request: GenerationRequest,
        on_token: Callable[[str], None],
        cancelled: threading.Event,
    ) -> GenerationResult:
        started = time.perf_counter()
        prompt_tokens = self.count_tokens(request.prompt)
        if prompt_tokens + request.max_tokens > self.n_ctx:
            raise ModelError(
                f"The prompt has {prompt_tokens} tokens and max_tokens is {request.max_tokens}, "
                f"which exceeds the context size of {self.n_ctx} tokens; shorten the prompt or "
                "lower max_tokens."
            )
        first_token_at: float | None = None
        completion_tokens = 0
        finish_reason = "length"
        if cancelled.is_set():
            return GenerationResult("cancelled", prompt_tokens, 0, 0.0, 0.0)
        # Evaluate every prompt from an empty KV cache. Reusing a cached prefix changes the
        # batch shapes of prompt processing, and with them the floating-point results, so
        # the same prompt at temperature 0 could give a different text after another prompt.
        self._llama.reset()
        stream = self._llama.create_completion(
            prompt=request.prompt,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            top_k=request.top_k,
            seed=request.seed,
            stop=request.stop or None,
            stream=True,
        )
        try:
            for chunk in stream:
                if cancelled.is_set():
                    finish_reason = "cancelled"
                    break
                choice = chunk["choices"][0]
                text = choice.get("text") or ""
                if text:
                    if first_token_at is None:
                        first_token_at = time.perf_counter()
                    completion_tokens += 1
                    on_token(text)
                if choice.get("finish_reason"):
                    finish_reason = choice["finish_reason"]
        finally:
            stream.close()
        ended = time.perf_counter()
        first = first_token_at or ended
        return GenerationResult(
            finish_reason=finish_reason,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            prompt_ms=(first - started) * 1000,
            generation_ms=(ended - first) * 1000,
        )
