"""The stand-in's own admin API under `/_sim/`, for out-of-process tests.

    GET    /_sim/faults          list the active fault rules
    POST   /_sim/faults          add a rule (a `FaultRule` as JSON; answers 201 with its id)
    DELETE /_sim/faults          remove every rule
    DELETE /_sim/faults/<id>     remove one rule
    POST   /_sim/watches/cut     end open watches: {"resource", "namespace", "abrupt": true}
    POST   /_sim/compact         forget watch history: {"resource"}; older versions get 410
    POST   /_sim/snapshot        save the snapshot now (when the server has a snapshot file)

The path is outside every Kubernetes API path; requests need the same bearer token as the API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from certlc_dev.kubesim.errors import BadRequest, MethodNotAllowed, NotFound
from certlc_dev.kubesim.faults import FaultRule, Faults
from certlc_dev.kubesim.wire import Request, Response

Handler = Callable[[dict[str, Any]], Response]


class AdminApi:
    """Serves `/_sim/...` requests."""

    def __init__(self, faults: Faults, snapshot: Callable[[], str | None]) -> None:
        self.faults = faults
        self.snapshot = snapshot
        self._routes: dict[str, dict[str, Handler]] = {
            "/_sim/faults": {"GET": self._rules, "POST": self._add, "DELETE": self._clear},
            "/_sim/watches/cut": {"POST": self._cut},
            "/_sim/compact": {"POST": self._compact},
            "/_sim/snapshot": {"POST": lambda body: Response.json(200, {"path": self.snapshot()})},
        }

    def handle(self, request: Request, path: str) -> Response:
        body: Any = request.json_body() if request.body else {}
        if not isinstance(body, dict):
            raise BadRequest("the admin API takes a JSON object")
        if path.startswith("/_sim/faults/"):
            if request.method != "DELETE":
                raise MethodNotAllowed()
            return self._remove(path.rsplit("/", 1)[1])
        methods = self._routes.get(path)
        if methods is None:
            raise NotFound.path()
        handler = methods.get(request.method)
        if handler is None:
            raise MethodNotAllowed()
        return handler(body)

    def _rules(self, body: dict[str, Any]) -> Response:
        return Response.json(200, {"rules": [r.to_dict() for r in self.faults.rules()]})

    def _add(self, body: dict[str, Any]) -> Response:
        try:
            rule = self.faults.add(FaultRule.from_dict(body))
        except (TypeError, ValueError) as error:
            raise BadRequest(f"invalid fault rule: {error}") from None
        return Response.json(201, rule.to_dict())

    def _clear(self, body: dict[str, Any]) -> Response:
        self.faults.clear()
        return Response.json(200, {"rules": []})

    def _remove(self, rule_id: str) -> Response:
        if not rule_id.isdigit() or not self.faults.remove(int(rule_id)):
            raise NotFound.path()
        return Response.json(200, {"removed": int(rule_id)})

    def _cut(self, body: dict[str, Any]) -> Response:
        count = self.faults.cut_watches(
            body.get("resource"), body.get("namespace"), abrupt=bool(body.get("abrupt", True))
        )
        return Response.json(200, {"cut": count})

    def _compact(self, body: dict[str, Any]) -> Response:
        return Response.json(
            200, {"resourceVersion": str(self.faults.compact(body.get("resource")))}
        )
