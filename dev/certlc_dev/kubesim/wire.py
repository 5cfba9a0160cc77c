"""The boundary between HTTP transport and API logic: requests, responses, body decoding.

`http.py` turns a socket exchange into a `Request` and writes back a `Response` (a whole
body) or a `StreamResponse` (chunked, produced by a callback, used for watches). Everything
in between works on these values, so the API logic never touches sockets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import yaml

from certlc_dev.kubesim import protobuf
from certlc_dev.kubesim.auth import Identity
from certlc_dev.kubesim.errors import ApiError, BadRequest, UnsupportedMediaType
from certlc_dev.kubesim.protobuf import ProtobufError
from certlc_dev.kubesim.store import encode

JSON = "application/json"
PROTOBUF = "application/vnd.kubernetes.protobuf"

Writer = Callable[[bytes], None]


class AbruptClose(Exception):
    """Raised by a stream to reset the connection instead of ending the response cleanly."""


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    identity: Identity | None = None

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def header(self, name: str) -> str | None:
        """A header value; `headers` keys are lower-case."""
        return self.headers.get(name.lower())

    def json_body(self) -> Any:
        """The decoded body (JSON, or YAML when sent as such); BadRequest when malformed."""
        content_type = (self.header("Content-Type") or JSON).split(";")[0].strip().lower()
        if not self.body:
            raise BadRequest("the request body is empty")
        if content_type in {"application/yaml", "application/apply-patch+yaml"}:
            try:
                return yaml.safe_load(self.body)
            except yaml.YAMLError as error:
                raise BadRequest(f"error converting YAML to JSON: {error}") from None
        if content_type == PROTOBUF:
            try:
                return protobuf.decode_object(self.body)
            except ProtobufError as error:
                raise UnsupportedMediaType(
                    f"the body of the request was in an unknown format - accepted media types "
                    f"include: {JSON}, application/yaml ({error})"
                ) from None
        if "protobuf" in content_type or "cbor" in content_type:
            raise UnsupportedMediaType(
                f"the body of the request was in an unknown format - "
                f"accepted media types include: {JSON}, application/yaml"
            )
        try:
            return msgspec.json.decode(self.body)
        except msgspec.DecodeError as error:
            raise BadRequest(f"the body of the request was not valid JSON: {error}") from None


@dataclass(slots=True)
class Response:
    """A complete response; `body` may be a list of chunks written back to back."""

    status: int
    body: bytes | list[bytes]
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, value: Any, content_type: str = JSON) -> Response:
        return cls(status, encode(value), content_type)

    @classmethod
    def error(cls, error: ApiError) -> Response:
        return cls(error.code, encode(error.status()), JSON, dict(error.headers))


@dataclass(slots=True)
class StreamResponse:
    """A chunked 200 response; `run(write, client_gone)` writes the chunks."""

    run: Callable[[Writer, Callable[[], bool]], None]
    content_type: str = JSON
    status: int = 200


Result = Response | StreamResponse
