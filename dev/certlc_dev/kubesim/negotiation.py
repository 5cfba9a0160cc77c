"""Content negotiation: which representation an `Accept` header asks for. Pure.

kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io` (server-side printing) and for
aggregated discovery (`application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`),
each followed by plain `application/json` as a fallback; other clients ask for plain JSON (or
protobuf first, which the stand-in does not speak, so JSON is served, as allowed by the
fallback in their header). The first acceptable entry wins, as with the API server.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class View(Enum):
    """The representation of a resource response."""

    OBJECT = "object"
    TABLE = "table"
    PARTIAL_METADATA = "partial-metadata"


@dataclass(frozen=True, slots=True)
class MediaRange:
    type: str
    params: dict[str, str]


def parse_accept(header: str | None) -> list[MediaRange]:
    """Split an Accept header into media ranges with their parameters (order kept)."""
    ranges: list[MediaRange] = []
    for part in (header or "").split(","):
        pieces = [p.strip() for p in part.split(";")]
        if not pieces[0]:
            continue
        params: dict[str, str] = {}
        for piece in pieces[1:]:
            key, _, value = piece.partition("=")
            params[key.strip().lower()] = value.strip().strip('"')
        if params.get("q") in {"0", "0.0", "0.00", "0.000"}:
            continue
        ranges.append(MediaRange(pieces[0].lower(), params))
    return ranges


def _json_like(media: MediaRange) -> bool:
    return media.type in {"application/json", "application/*", "*/*"}


def resource_view(header: str | None) -> View:
    """TABLE or PARTIAL_METADATA when asked for first, else OBJECT."""
    for media in parse_accept(header):
        if not _json_like(media):
            continue
        as_ = media.params.get("as")
        if as_ is None:
            return View.OBJECT
        if media.params.get("g") != "meta.k8s.io" or media.params.get("v") not in {"v1", "v1beta1"}:
            continue
        if as_ == "Table":
            return View.TABLE
        if as_ in {"PartialObjectMetadata", "PartialObjectMetadataList"}:
            return View.PARTIAL_METADATA
    return View.OBJECT


def aggregated_discovery(header: str | None) -> str | None:
    """The aggregated discovery version asked for first ("v2", "v2beta1"), or None."""
    for media in parse_accept(header):
        if not _json_like(media):
            continue
        if media.params.get("as") is None:
            return None
        if (
            media.params.get("as") == "APIGroupDiscoveryList"
            and media.params.get("g") == "apidiscovery.k8s.io"
            and media.params.get("v") in {"v2", "v2beta1"}
            and "profile" not in media.params
        ):
            return media.params["v"]
    return None
