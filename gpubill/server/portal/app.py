"""The customer portal's routes on `gpubill serve`: server-rendered pages behind a link.

    GET /portal/TOKEN/                       usage this period: by GPU type, region and day (chart), standing
    GET /portal/TOKEN/?period=YYYY-MM        an earlier period's usage
    GET /portal/TOKEN/invoices               the current draft, past invoices, credit notes
    GET /portal/TOKEN/invoices/REF           one invoice, itemized (REF: its number or id, or "current")
    GET /portal/TOKEN/invoices/REF/FORMAT    its PDF, UBL (xml) or CSV
    GET /portal/TOKEN/invoices/REF/lines/N[?after=]   line N of a stored invoice: how it was priced, its events
    GET /portal/TOKEN/alerts                 the alerts that fired
    GET /portal/TOKEN/estimate[?gpu_type=&count=&hours=&region=&class=]   a planned job's lines
    GET /portal/static/NAME                  the one stylesheet and the one script (no data)

TOKEN is a link's (gpubill/service/portal/links.py). A page shows the link's
customer and nobody else: an invoice of another customer is "not found"
exactly like one that does not exist, and no other route of the server takes
the token (the API wants a key). A malformed, unknown or forged token gets
403, an expired or revoked one 410, each an HTML page saying so. Every
request with a known link is logged as a visit (status included). Pages are
``no-store`` and never sent to a third party: the Content-Security-Policy
allows this server only, and no referrer leaves the page (the token is in the
URL).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

from gpubill.service.portal.links import ROOT, Visit, check_link, linked_since, log_visit
from gpubill.service.rating import ServiceError

from ..storefail import StoreFailure
from .pages import Pages

STATIC = Path(__file__).parent / "static"
STATIC_FILES = {"portal.css": "text/css; charset=utf-8", "portal.js": "text/javascript; charset=utf-8"}
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
}
REFUSED = {"invalid": 403, "expired": 410, "revoked": 410}

PREPARING, PREPARED = "gpubill_portal_preparing", "gpubill_portal_prepared_customers"  # /metrics gauges
PREPARING_HELP = "1 while the portal prepares the pages of the customers holding a link"
PREPARED_HELP = "Customers whose portal pages were prepared (at start, and each one linked since)"
LINKS_LOOKED_S = 2.0  # how often the server looks for links made since it started (their customers' pages are
# then prepared before their first visit)

log = logging.getLogger("uvicorn.error")


class PortalApp:
    """The portal's endpoints over the server's store (``api``) and the contracts ``serve`` was given."""

    def __init__(self, api, contract_paths: list[str], now_ms=None):
        from gpubill.service.estimate import now_ms as clock

        self.api = api
        self.contracts = list(contract_paths)
        self.now_ms = now_ms or clock
        self.pages = Pages(api.store, contract_paths, self.now_ms)
        if self.contracts:
            threading.Thread(target=self._warm, name="gpubill-portal-warm", daemon=True).start()

    def _warm(self) -> None:
        """In the background from the start: the contracts compiled, then the pages of every customer holding a
        link prepared, and of each customer linked later within LINKS_LOOKED_S of its link (a failure is the
        operator's to read, and leaves the pages to compute on request)."""
        metrics = self.api.metrics
        metrics.set_gauge(PREPARING, PREPARING_HELP, 1)
        try:
            self.pages.portal.warm()
            prepared: set[str] = set()
            seen = 0
            while True:
                seen = self._prepare_linked(prepared, seen)
                time.sleep(LINKS_LOOKED_S)
        except StoreFailure as e:
            if not self.api.store.closed:  # closed: the server stopped
                self._warming_failed(e)
        except Exception as e:  # a warm-up never stops the server: requests compute for themselves
            self._warming_failed(e)
        finally:
            metrics.set_gauge(PREPARING, PREPARING_HELP, 0)

    def _prepare_linked(self, prepared: set[str], seen: int) -> int:
        """Prepare the pages of the customers linked after link ``seen`` (its rowid) and not ``prepared`` yet
        (they are added to it); the last link looked at."""
        metrics = self.api.metrics
        customers, seen = self.api._read(linked_since, self.api.store, self.now_ms(), seen)
        fresh = [c for c in customers if c not in prepared]
        if fresh:
            metrics.set_gauge(PREPARING, PREPARING_HELP, 1)
        for customer in fresh:
            self.pages.portal.warm([customer])
            prepared.add(customer)
            metrics.set_gauge(PREPARED, PREPARED_HELP, len(prepared))
        metrics.set_gauge(PREPARING, PREPARING_HELP, 0)
        return seen

    @staticmethod
    def _warming_failed(e: Exception) -> None:
        log.warning("gpubill: portal: preparing the pages failed (%s: %s); they are computed on request",
                    type(e).__name__, (str(e).splitlines() or [""])[0])

    def routes(self) -> list[Route]:
        page = self._page
        return [Route(f"{ROOT}/static/{{name}}", self.static, methods=["GET", "HEAD"]),
                Route(f"{ROOT}/{{token}}/", page("usage", self.pages.usage), methods=["GET", "HEAD"]),
                Route(f"{ROOT}/{{token}}/invoices", page("invoices", self.pages.invoices), methods=["GET", "HEAD"]),
                Route(f"{ROOT}/{{token}}/invoices/{{ref}}", page("invoice", self.pages.invoice),
                      methods=["GET", "HEAD"]),
                Route(f"{ROOT}/{{token}}/invoices/{{ref}}/{{fmt}}", page("download", self.pages.download),
                      methods=["GET", "HEAD"]),
                Route(f"{ROOT}/{{token}}/invoices/{{ref}}/lines/{{n}}", page("line", self.pages.line),
                      methods=["GET", "HEAD"]),
                Route(f"{ROOT}/{{token}}/alerts", page("alerts", self.pages.alerts), methods=["GET", "HEAD"]),
                Route(f"{ROOT}/{{token}}/estimate", page("estimate", self.pages.estimate), methods=["GET", "HEAD"]),
                Route(f"{ROOT}/{{token}}", page("root", self._to_root), methods=["GET", "HEAD"]),
                Route(f"{ROOT}/{{token}}/{{rest:path}}", page("unknown", self.pages.unknown),
                      methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"])]

    async def static(self, request: Request):
        name = request.path_params["name"]
        if name not in STATIC_FILES:
            return _secured(HTMLResponse("not found", status_code=404))
        resp = FileResponse(STATIC / name, media_type=STATIC_FILES[name])
        resp.headers["cache-control"] = "public, max-age=300"
        resp.headers["x-content-type-options"] = "nosniff"
        return resp

    def _page(self, route: str, handler):
        """The endpoint: the link checked, ``handler(link, request)`` in a thread, the visit logged."""
        async def endpoint(request: Request):
            t0 = time.perf_counter()
            at = self.now_ms()
            link, resp = await run_in_threadpool(self._answer, request, handler, at)
            if link is not None:
                await run_in_threadpool(self.api._write, log_visit, self.api.store, _visit(request, link, resp, at))
            self.api.metrics.observe(f"portal_{route}", resp.status_code, time.perf_counter() - t0)
            return _secured(resp)
        return endpoint

    def _answer(self, request: Request, handler, at: int) -> tuple:
        """(the link if its id is known, the response to a request made at ``at``)."""
        link, refusal = self.api._read(check_link, self.api.store, request.path_params["token"], at)
        if refusal is not None:
            return link, self.pages.refused(refusal, link, REFUSED[refusal])
        if not self.contracts:
            return link, self.pages.unavailable(link, "gpubill serve was started without --contracts")
        try:
            return link, handler(link, request)
        except ServiceError as e:  # the contracts cannot be loaded or priced: the operator's problem
            return link, self.pages.unavailable(link, str(e))

    def _to_root(self, link, request: Request) -> Response:
        return Response(status_code=308, headers={"location": request.url.path + "/"})


def _visit(request: Request, link, resp: Response, at: int) -> Visit:
    """The visit of a request made at ``at`` (by the portal's clock, the one its link was checked at)."""
    path = request.url.path
    below = path[len(ROOT) + 1:].partition("/")[2]
    c = request.client
    return Visit(link.id, at, request.method, "/" + below, resp.status_code,
                 c.host if c else None)


def _secured(resp: Response) -> Response:
    for k, v in SECURITY_HEADERS.items():
        resp.headers.setdefault(k, v)
    return resp
