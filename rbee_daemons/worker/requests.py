"""Request bodies the worker accepts: OpenAI completion and chat completion requests."""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rbee_daemons.errors import InvalidRequestError
from rbee_daemons.operations import MAX_PROMPT_CHARS, MAX_TOKENS_LIMIT, validation_message
from rbee_daemons.worker.chat import ChatMessage
from rbee_daemons.worker.engine import GenerationRequest

MAX_MESSAGES = 512


class SamplingRequest(BaseModel):
    """Fields shared by both endpoints; unknown keys are ignored, as OpenAI clients send many."""

    model_config = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False)

    model: str | None = None
    max_tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS_LIMIT)] = 16
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 1.0
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    top_k: Annotated[int, Field(ge=0, le=1000)] = 40
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = None
    stop: (
        Annotated[str, Field(min_length=1)]
        | Annotated[list[Annotated[str, Field(min_length=1)]], Field(max_length=4)]
        | None
    ) = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    n: Annotated[int, Field(ge=1, le=1)] = 1

    @property
    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))

    def stop_list(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    def generation_for(self, prompt: str, extra_stop: list[str] | None = None) -> GenerationRequest:
        stop = self.stop_list() + [s for s in extra_stop or [] if s not in self.stop_list()]
        return GenerationRequest(prompt=prompt, max_tokens=self.max_tokens,
                                 temperature=self.temperature, top_p=self.top_p,
                                 top_k=self.top_k, seed=self.seed, stop=stop)


class CompletionRequest(SamplingRequest):
    prompt: Annotated[str, Field(min_length=1, max_length=MAX_PROMPT_CHARS)]

    @field_validator("prompt")
    @classmethod
    def _prompt_has_no_nul(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("the prompt must not contain NUL characters")
        return value

    def generation(self) -> GenerationRequest:
        return self.generation_for(self.prompt)


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: Annotated[str, Field(max_length=MAX_PROMPT_CHARS)] | list[ContentPart]

    def plain(self) -> ChatMessage:
        text = self.content if isinstance(self.content, str) else "".join(
            part.text for part in self.content
        )
        role = "system" if self.role == "developer" else self.role
        return ChatMessage(role, text)


class ChatRequest(SamplingRequest):
    messages: Annotated[list[Message], Field(min_length=1, max_length=MAX_MESSAGES)]

    @field_validator("messages")
    @classmethod
    def _size_is_bounded(cls, messages: list[Message]) -> list[Message]:
        total = sum(len(m.plain().content) for m in messages)
        if total > MAX_PROMPT_CHARS:
            raise ValueError(f"the messages hold {total} characters; the limit is "
                             f"{MAX_PROMPT_CHARS}")
        return messages

    def chat_messages(self) -> list[ChatMessage]:
        return [message.plain() for message in self.messages]


RequestT = TypeVar("RequestT", bound="SamplingRequest")


def parse_request(model: type[RequestT], body: dict[str, Any]) -> RequestT:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise InvalidRequestError(validation_message(exc), code="invalid_field") from exc
