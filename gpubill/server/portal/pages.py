"""The portal's pages: what each route shows, read through the service layer's ``Portal`` as the link's customer.

Each handler takes the link (already checked) and the request, and answers a
response: a page rendered from one template of ``templates/`` (render.py), a
download, or a "not found" page that looks the same whether the thing is
another customer's or does not exist. Handlers run in a worker thread.
"""

from __future__ import annotations

import datetime as dt
import logging

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from gpubill.service.portal.links import ROOT
from gpubill.service.portal.view import CURRENT, Portal
from gpubill.service.rating import ServiceError

from .chart import daily_chart
from .render import Renderer

DOWNLOADS = ("pdf", "ubl", "csv")  # the formats a download path names (the JSON document is the operator's)
MAX_LINE = 100_000  # a line number past this is no line of any invoice
ESTIMATE_FIELDS = ("gpu_type", "count", "hours", "region", "class", "subscription")

log = logging.getLogger("uvicorn.error")


class Pages:
    def __init__(self, store, contract_paths: list[str], now_ms):
        self.portal = Portal(store, contract_paths, now_ms=now_ms)
        self.render = Renderer()

    def _page(self, template: str, link, request: Request, status: int = 200, **context) -> HTMLResponse:
        """A page of the link's customer; its links are below ``base`` (the link's root)."""
        context.setdefault("nav", None)
        html = self.render.page(template, link=link, customer=self.portal.customer(link.customer),
                                base=f"{ROOT}/{request.path_params['token']}", **context)
        return HTMLResponse(html, status_code=status)

    def _message(self, link, request: Request, status: int, title: str, message: str) -> HTMLResponse:
        return self._page("message.html", link, request, status, title=title, message=message)

    # -- the pages ------------------------------------------------------------------
    def usage(self, link, request: Request) -> Response:
        period = request.query_params.get("period") or None
        try:
            usage = self.portal.usage(link.customer, period)
        except ServiceError as e:
            return self._message(link, request, 400, "Usage", str(e))
        standing = self.portal.standing(link.customer) if period is None else None
        today = dt.datetime.fromtimestamp(self.portal.now_ms() / 1000, dt.timezone.utc).date().isoformat()
        charts = {u.subscription + u.period_label: daily_chart(u.daily, f"chart-{i}")
                  for i, u in enumerate(usage.subscriptions)}
        return self._page("usage.html", link, request, usage=usage, current=CURRENT, standing=standing, charts=charts,
                          period=period, periods=self.render.recent_months(self.portal.now_ms(), 12), today=today,
                          nav="usage")

    def invoices(self, link, request: Request) -> Response:
        return self._page("invoices.html", link, request, listing=self.portal.invoices(link.customer), current=CURRENT,
                          nav="invoices")

    def invoice(self, link, request: Request) -> Response:
        view = self.portal.invoice(link.customer, request.path_params["ref"])
        if view is None:
            return self.not_found(link, request)
        return self._page("invoice.html", link, request, invoice=view, nav="invoices")

    def line(self, link, request: Request) -> Response:
        index = request.path_params["n"]
        if not index.isdigit() or not 1 <= int(index) <= MAX_LINE:
            return self.not_found(link, request)
        try:
            view = self.portal.line(link.customer, request.path_params["ref"], int(index) - 1,
                                    request.query_params.get("after"))
        except ServiceError as e:
            return self._message(link, request, 400, "Line", str(e))
        if view is None:
            return self.not_found(link, request)
        return self._page("line.html", link, request, line=view, nav="invoices")

    def download(self, link, request: Request) -> Response:
        fmt = request.path_params["fmt"]
        if fmt not in DOWNLOADS:
            return self.not_found(link, request)
        try:
            found = self.portal.export(link.customer, request.path_params["ref"], fmt)
        except ServiceError as e:
            return self._message(link, request, 404, "Not available", str(e))
        if found is None:
            return self.not_found(link, request)
        data, name, media = found
        return Response(data, media_type=media, headers={"content-disposition": f'attachment; filename="{name}"'})

    def alerts(self, link, request: Request) -> Response:
        return self._page("alerts.html", link, request, alerts=self.portal.alerts(link.customer), nav="alerts")

    def estimate(self, link, request: Request) -> Response:
        form = {k: request.query_params.get(k, "") for k in ESTIMATE_FIELDS}
        result, error = None, None
        if any(form[k] for k in ("gpu_type", "count", "hours")):
            try:
                result = self.portal.estimate(link.customer, form)
            except ServiceError as e:
                error = str(e)
        return self._page("estimate.html", link, request, 200 if error is None else 422, form=form, result=result,
                          error=error, nav="estimate")

    # -- refusals and failures ----------------------------------------------------------
    def unknown(self, link, request: Request) -> Response:
        return self.not_found(link, request)

    def not_found(self, link, request: Request) -> Response:
        return self._message(link, request, 404, "Not found", "There is nothing here for this link. "
                                                              "Use the menu above.")

    def unavailable(self, link, message: str) -> Response:
        """The contracts cannot be loaded or priced: the operator reads why in the log, the customer a 503."""
        log.warning("gpubill: portal link %s: %s", link.id if link else "-", message.splitlines()[0])
        return HTMLResponse(self.render.page("message.html", link=None, title="Unavailable",
                                             message="The portal cannot show this page right now. "
                                                     "Please try again in a few minutes."),
                            status_code=503)

    def refused(self, reason: str, link, status: int) -> Response:
        message = {"invalid": "This link is not valid. Check that you copied all of it, or ask your provider "
                              "for a new one.",
                   "expired": "This link has expired. Ask your provider for a new one.",
                   "revoked": "This link was withdrawn by your provider. Ask them for a new one."}[reason]
        html = self.render.page("message.html", link=None, title="Link not usable", message=message)
        return HTMLResponse(html, status_code=status)
