"""OpenAI wire types (requests) and their conversion to the internal backend types.

Unknown fields are ignored, as OpenAI-compatible servers do, so clients that send extras
(`user`, `frequency_penalty`, ...) keep working; known fields are range-checked."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from loom.backends.base import Request, Sampling
from loom.errors import InputError
from loom.model.tools import NAME_PATTERN, Tool, ToolSet

_MAX_TOKENS_CAP = 32_768


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextPart(_Wire):
    type: Literal["text"]
    text: str


class ImageURL(_Wire):
    url: str = Field(min_length=1, description="data:image/...;base64,... (http(s) only where the operator allows fetching)")
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Wire):
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


_TOOL_NAME = NAME_PATTERN.pattern  # one rule for tool names: the wire schema and ToolSet agree


class CalledFunction(_Wire):
    name: str = Field(min_length=1)
    arguments: str = "{}"  # a JSON object, as a string (OpenAI's wire shape)


class ToolCall(_Wire):
    id: str = Field(min_length=1)
    type: Literal["function"] = "function"
    function: CalledFunction


class Message(_Wire):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCall] | None = None  # assistant turns that called tools
    tool_call_id: str | None = None  # tool turns: the call this result answers

    def text(self) -> str:
        """The text parts joined (image parts are resolved by serve/images.py before a model sees them)."""
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content if part.type == "text")
        return self.content or ""

    def internal(self) -> dict:
        out = {"role": "system" if self.role == "developer" else self.role, "content": self.text()}
        if self.tool_calls:
            out["tool_calls"] = [c.model_dump() for c in self.tool_calls]
        if self.role == "tool":
            out["tool_call_id"] = self.tool_call_id
        return out


class FunctionDef(_Wire):
    name: str = Field(pattern=_TOOL_NAME, description="1-64 letters, digits, '_' or '-'")
    description: str = ""
    parameters: dict = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None  # enforced either way: calls are decoded under the parameters' grammar


class ToolDef(_Wire):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(_Wire):
    name: str = Field(min_length=1)


class NamedToolChoice(_Wire):
    type: Literal["function"]
    function: NamedFunction


class JsonSchemaFormat(_Wire):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    name: str = Field("response", min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
    description: str | None = None
    schema_: dict = Field(default_factory=lambda: {"type": "object"}, alias="schema")
    strict: bool | None = None  # enforced either way: the output follows the schema token by token


class ResponseFormat(_Wire):
    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(_Wire):
    include_usage: bool = False


class _Generation(_Wire):
    model: str = Field(min_length=1)
    max_tokens: Annotated[int, Field(ge=1, le=_MAX_TOKENS_CAP)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1, le=_MAX_TOKENS_CAP)] | None = None
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0, description="extension (as vLLM): keep the k most likely tokens; 0 = off")
    repetition_penalty: float = Field(1.0, ge=1.0, le=3.0, description="extension (as vLLM): 1 = off, 1.1-1.3 curbs loops; "
                                      "the engine takes 1 to 3 (outside: a 400, not a failed request)")
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(1, ge=1, le=16)
    stream: bool = False
    stream_options: StreamOptions | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, v):
        stops = [v] if isinstance(v, str) else (v or [])
        if len(stops) > 4 or any(not s for s in stops):
            raise ValueError("stop takes up to 4 non-empty strings")
        return stops

    def sampling(self, default_max: int, index: int = 0, json_object: bool = False, json_schema: dict | None = None) -> Sampling:
        seed = None if self.seed is None else self.seed + index  # n choices: distinct but reproducible
        return Sampling(max_tokens=self.max_completion_tokens or self.max_tokens or default_max,
                        temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
                        repetition_penalty=self.repetition_penalty, stop=list(self.stop or []), seed=seed,
                        json_object=json_object, json_schema=json_schema, logprobs=self.alternatives())

    def alternatives(self) -> int | None:
        """None: no logprobs; k: each token's logprob and its k most likely alternatives."""
        return None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatRequest(_Generation):
    messages: list[Message] = Field(min_length=1)
    response_format: ResponseFormat | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    tools: list[ToolDef] | None = Field(None, max_length=128)
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool = True
    ground_tool_calls: bool = Field(True, description="extension: with tool_choice auto, drop a call none of whose "
                                    "arguments appear in the conversation and answer in text (docs/tools.md)")

    @field_validator("response_format")
    @classmethod
    def _schema_given(cls, v):
        if v is not None and v.type == "json_schema" and v.json_schema is None:
            raise ValueError("type json_schema needs response_format.json_schema with a schema")
        return v

    @field_validator("top_logprobs")
    @classmethod
    def _top_needs_logprobs(cls, v, info):
        if v is not None and not info.data.get("logprobs"):
            raise ValueError("top_logprobs needs logprobs: true")
        return v

    def alternatives(self) -> int | None:
        return (self.top_logprobs or 0) if self.logprobs else None

    def internal(self, default_max: int, index: int = 0, messages: list[dict] | None = None) -> Request:
        """`messages`: the internal messages when serve/images.py resolved image parts."""
        fmt = self.response_format
        json_object = fmt is not None and fmt.type == "json_object"
        json_schema = fmt.json_schema.schema_ if fmt is not None and fmt.type == "json_schema" else None
        messages = messages or [m.internal() for m in self.messages]
        return Request(self.sampling(default_max, index, json_object, json_schema), messages=messages, tools=self.toolset())

    def toolset(self) -> ToolSet | None:
        """The declared tools and how they may be used; an InputError (400) naming the field when they
        cannot be (a duplicate name, parameters that are not an object schema, an undeclared choice)."""
        choice = self.tool_choice
        if not self.tools and choice in (None, "none"):
            return None
        name = choice.function.name if isinstance(choice, NamedToolChoice) else (choice or "auto")
        tools = [Tool(t.function.name, t.function.description, t.function.parameters) for t in self.tools or []]
        toolset = ToolSet(tools, name, self.parallel_tool_calls, self.ground_tool_calls)  # checks names, parameters, choice
        if self.response_format is not None and self.response_format.type != "text":
            raise InputError("tools and a JSON response_format cannot be combined in one request",
                             "drop one: a tool's parameters already hold its arguments to a schema", param="response_format")
        return toolset


class CompletionRequest(_Generation):
    prompt: str | list[int] | list[str] = Field(...)
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=20, description="the chosen token's logprob and this many alternatives")

    def alternatives(self) -> int | None:
        return self.logprobs

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, v):
        if isinstance(v, list) and v and isinstance(v[0], str):
            if len(v) != 1:
                raise ValueError("send one prompt per request (a list of several prompts is not supported)")
            return v[0]
        if isinstance(v, list) and not v:
            raise ValueError("prompt is an empty list")
        return v

    def internal(self, default_max: int, index: int = 0) -> Request:
        return Request(self.sampling(default_max, index), prompt=self.prompt)


class EmbeddingRequest(_Wire):
    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    input_type: Literal["query", "passage"] = "passage"  # extension: e5-style encoders embed queries differently

    def inputs(self) -> list[str] | list[list[int]]:
        v = self.input
        if isinstance(v, str):
            return [v]
        if not v:
            raise ValueError("input is an empty list")
        if isinstance(v[0], int):
            return [list(v)]  # one text as token ids
        return list(v)


class ClassifyRequest(_Wire):
    model: str = Field(min_length=1)
    input: str | list[str]
    explain: bool = False  # add the tokens that pushed each decision, with their weights

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)
