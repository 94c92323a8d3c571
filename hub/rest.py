"""The hub's REST API (docs/hub.md "REST API"): FastAPI over the fleet store and the token store.

Agent side, `POST /api/v1/agents/{cluster}/heartbeat|reports`: Bearer = that cluster's agent token
(401 without a valid token; 403 for another cluster's token or the admin token). User side,
`GET /api/v1/clusters[/{name}]`, `/api/v1/replications`, `/api/v1/summary`: Bearer = the admin token
(401 without a valid token; 403 for an agent token). `/metrics`, `/healthz` and `/readyz` (503 until
the informers have synced) are open. Errors are FastAPI's `{"detail": ...}`; a failing hub API call
is a 503. Authorization headers and tokens are never logged.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations at run time,
# some of which name types local to create_app.
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from kubernetes.client.exceptions import ApiException
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from api.hub import (
    ClusterInfo,
    ErrorDetail,
    Heartbeat,
    HeartbeatReply,
    ReplicationRow,
    ReportBatch,
    ReportReply,
    Role,
    State,
    Summary,
)
from hub import limits as caps
from hub import paging
from hub.apimetrics import ApiMetrics
from hub.fleet import FleetStore
from hub.limits import MAX_BODY_BYTES, RestLimits
from hub.restdoor import RETRY_AFTER_SECONDS, UNAUTHORIZED, InFlight, Refusal, RequestDoor
from hub.tokens import Caller, TokenStore
from hub.views import RowFilter, sort_key
from kube.clock import Clock

log = logging.getLogger("volsync.hub.rest")
T = TypeVar("T")

__all__ = ["MAX_BODY_BYTES", "create_app"]
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorDetail, "description": "No bearer token, or one the hub does not know"},
    403: {"model": ErrorDetail, "description": "A valid token that may not do this"},
    429: {"model": ErrorDetail, "description": "The caller has too many requests in flight: retry after Retry-After"},
    503: {"model": ErrorDetail, "description": "The hub API did not answer"},
}
_BATCH_REFUSED: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorDetail, "description": "The body, or a report in it, is larger than the hub accepts"},
    429: {"model": ErrorDetail, "description": "The batch would store more replications than the cluster may have "
          "(`detail` names them), or the caller is busy (retry after Retry-After)"},
}
_PAGED: dict[int | str, dict[str, Any]] = {
    200: {"headers": {paging.CONTINUE_HEADER: {
        "description": "Present when more items remain: pass it back as `continue` for the next page",
        "schema": {"type": "string"}}}},
    400: {"model": ErrorDetail, "description": "A `continue` token this hub did not hand out for this list"},
}
Limit = Annotated[int | None, Query(ge=1, le=paging.MAX_LIMIT, description="At most this many items")]
Continue = Annotated[str | None, Query(alias="continue", max_length=paging.MAX_TOKEN_CHARS,
                                       description="The X-Continue header of the previous page")]


def _refused(request: Request, refusal: Refusal) -> HTTPException:
    log.info("%d %s %s: %s", refusal.status, request.method, request.url.path, refusal.detail)
    headers = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else None
    return HTTPException(refusal.status, refusal.detail, headers=headers)


class ClusterLocks:
    """One lock per cluster (only authenticated clusters get one, so their number is bounded)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def __call__(self, cluster: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(cluster, threading.Lock())


def paged(response: Response, items: list[T], key: Callable[[T], paging.Key], listing: str, limit: int | None,
          token: str | None) -> list[T]:
    """One page of a sorted list; the next page's token goes in the X-Continue header (400 on a bad token)."""
    try:
        chosen, following = paging.page(items, key, listing, limit, token)
    except paging.BadContinue as exc:
        raise HTTPException(400, str(exc)) from None
    if following is not None:
        response.headers[paging.CONTINUE_HEADER] = following
    return chosen


def validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for error in exc.errors():
        item = {"type": error.get("type", ""), "loc": list(error.get("loc", ())), "msg": error.get("msg", "")}
        if ctx := error.get("ctx"):
            item["ctx"] = {str(k): v if isinstance(v, int | float | str | bool) else str(v) for k, v in ctx.items()}
        out.append(item)
    return out


def create_app(
    fleet: FleetStore,
    tokens: TokenStore,
    *,
    clock: Clock,
    metrics_registry: CollectorRegistry,
    limits: RestLimits | None = None,
) -> FastAPI:
    """The REST app over `fleet` and `tokens`, behind the door (`hub/restdoor.py`), within `limits`."""
    limits = limits or RestLimits()
    app = FastAPI(
        title="volsync-hub",
        version="v1",
        description="Fleet-wide VolSync replication status: agents report, users query.",
    )
    metrics = ApiMetrics(metrics_registry)
    metrics.watch_fleet(fleet.summary, clock.now)
    # the door (hub/restdoor.py) authenticates; HTTPBearer only puts the scheme in the OpenAPI document
    bearer = HTTPBearer(auto_error=False, description="An agent token (agent side) or the admin token (user side)")

    def caller(request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> Caller:
        """Who is calling, as the door found and authorized them before the body was read."""
        who: Caller | None = (request.scope.get("state") or {}).get("caller")
        if who is None:  # the door lets no /api/v1 request through without a caller
            raise _refused(request, UNAUTHORIZED)
        return who

    def agent(request: Request, cluster: str, who: Annotated[Caller, Depends(caller)]) -> str:
        """The route's `{cluster}`, which must be the caller's own: the cluster authorised is the cluster written."""
        if who.kind != "agent" or who.cluster != cluster:
            raise _refused(request, Refusal(403, f"this token does not belong to cluster {cluster!r}"))
        return cluster

    def admin(request: Request, who: Annotated[Caller, Depends(caller)]) -> Caller:
        if who.kind != "admin":
            raise _refused(request, Refusal(403, "the user endpoints take the admin token"))
        return who

    def check_fresh(cluster: str, sent_at: datetime) -> None:
        skew = (sent_at - clock.now()).total_seconds()
        if abs(skew) > limits.heartbeat_skew_seconds:
            msg = (f"sentAt is {abs(skew):.0f}s {'behind' if skew < 0 else 'ahead of'} the hub's clock; at most "
                   f"{limits.heartbeat_skew_seconds:g}s are accepted (a replayed heartbeat, or a clock to fix)")
            log.info("422 heartbeat of cluster %s: %s", cluster, msg)
            raise HTTPException(422, [{"type": "stale_heartbeat", "loc": ["body", "sentAt"], "msg": msg}])

    batch_lock = ClusterLocks()
    AgentCluster = Annotated[str, Depends(agent)]
    Admin = Annotated[Caller, Depends(admin)]

    @app.exception_handler(ApiException)
    async def hub_api_failed(request: Request, exc: ApiException) -> JSONResponse:
        log.warning("%s %s: hub API error %s %s", request.method, request.url.path, exc.status, exc.reason)
        return JSONResponse({"detail": f"the hub API failed ({exc.status} {exc.reason}); retry"}, status_code=503)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's 422, without echoing the input back (a batch can be large)."""
        return JSONResponse({"detail": validation_errors(exc)}, status_code=422)

    in_flight = InFlight(agent=limits.agent_in_flight, admin=limits.admin_in_flight)
    app.add_middleware(RequestDoor, identify=tokens.identify, max_body_bytes=limits.max_body_bytes,
                       in_flight=in_flight)
    app.middleware("http")(metrics.middleware)

    # -- agent side ---------------------------------------------------------------------------------
    @app.post("/api/v1/agents/{cluster}/heartbeat", tags=["agent"], responses=_ERRORS)
    def heartbeat(cluster: AgentCluster, beat: Heartbeat) -> HeartbeatReply:
        """Renew the cluster's Lease `volsync`; the reply says how often to come back.

        `sentAt` must be within the hub's skew bound of the hub's clock (422 otherwise), so a
        replayed heartbeat cannot keep a dead agent available."""
        check_fresh(cluster, beat.sent_at)
        reply = fleet.heartbeat(cluster, beat)
        metrics.heartbeats.inc()
        return reply

    @app.post("/api/v1/agents/{cluster}/reports", tags=["agent"], responses={**_ERRORS, **_BATCH_REFUSED})
    def reports(cluster: AgentCluster, batch: ReportBatch) -> ReportReply:
        """Store the latest state of replications; a sequence not above the stored one is stale.

        The whole batch is refused, nothing stored, when a report is over the size cap (413) or the
        cluster would have more replications than its cap (429); `detail` lists the reports at fault.
        A 429 naming no report (another batch of the cluster in flight) is to be retried."""
        lock = batch_lock(cluster)
        if not lock.acquire(blocking=False):  # never park a worker thread behind the cluster's other batch
            raise HTTPException(429, f"another batch of cluster {cluster} is being stored; retry",
                                headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        try:  # the check and the writes are one step: concurrent batches cannot pass the cap
            refusal = caps.check_batch(cluster, batch, fleet.stored_names(cluster), limits)
            if refusal is not None:
                log.warning("%d reports of cluster %s: %s", refusal.status, cluster, refusal.errors[0]["msg"])
                raise HTTPException(refusal.status, refusal.errors)
            reply = fleet.submit(cluster, batch)
        finally:
            lock.release()
        metrics.reported(reply.accepted, reply.stale)
        return reply

    # -- user side ----------------------------------------------------------------------------------
    @app.get("/api/v1/clusters", tags=["user"], responses={**_ERRORS, **_PAGED})
    def clusters(_: Admin, response: Response, limit: Limit = None, token: Continue = None) -> list[ClusterInfo]:
        """Every cluster the hub knows, by name: addon conditions, availability, replication counts."""
        return paged(response, fleet.clusters(clock.now()), lambda c: (c.name,), "clusters", limit, token)

    @app.get("/api/v1/clusters/{name}", tags=["user"], responses={**_ERRORS, 404: {"model": ErrorDetail}})
    def cluster(_: Admin, name: str) -> ClusterInfo:
        info = fleet.cluster(name, clock.now())
        if info is None:
            raise HTTPException(404, f"cluster {name!r} not found")
        return info

    @app.get("/api/v1/replications", tags=["user"], responses={**_ERRORS, **_PAGED})
    def replications(
        _: Admin,
        response: Response,
        cluster: Annotated[str | None, Query(max_length=253)] = None,
        namespace: Annotated[str | None, Query(max_length=63)] = None,
        role: Role | None = None,
        state: State | None = None,
        limit: Limit = None,
        token: Continue = None,
    ) -> list[ReplicationRow]:
        """One row per replication with lag and RPO state as of now (by cluster, namespace, name, role)."""
        flt = RowFilter(cluster=cluster, namespace=namespace, role=role, state=state)
        return paged(response, fleet.replications(flt, clock.now()), sort_key, "replications", limit, token)

    @app.get("/api/v1/summary", tags=["user"], responses=_ERRORS)
    def summary(_: Admin) -> Summary:
        """Replications by state; clusters available and total."""
        return fleet.summary(clock.now())

    # -- operations ---------------------------------------------------------------------------------
    @app.get("/metrics", tags=["operations"], response_class=Response)
    def prometheus() -> Response:
        return Response(generate_latest(metrics_registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], responses={503: {"model": ErrorDetail}})
    def readyz() -> dict[str, str]:
        if not (fleet.synced() and tokens.synced()):
            raise HTTPException(503, "informers not synced yet")
        return {"status": "ok"}

    return app
