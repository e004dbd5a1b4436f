"""The pages: each reads through the control plane as the server's principal, and each
action is a request the runtime checks; the page never decides anything itself."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, cast, get_args

import msgspec
import structlog
from starlette.datastructures import FormData, QueryParams
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from protocols import (
    TERMINAL_STATUSES,
    DecisionKind,
    ErrorCode,
    PendingDecision,
    RunRecord,
    RunSummary,
    WorkflowView,
)
from runtime.client._client import ControlRefused, RuntimeUnavailable
from runtime.client._inputs import InputInvalid
from runtime.ui._filters import RunFilters
from runtime.ui._forms import (
    FormInvalid,
    as_data,
    changed_values,
    count_field,
    key_json_lines,
    name_field,
)
from runtime.ui._graph_svg import graph_svg
from runtime.ui._link import RuntimeLink
from runtime.ui._plots import report_plots
from runtime.ui._sessions import COOKIE, Sessions
from runtime.ui._settings import BULK_LIMIT, HISTORY_PAGE, RUNS_PAGE, UiSettings

log = structlog.get_logger("baton.ui")

STATUS_OF: dict[ErrorCode, int] = {
    "unknown_run": 404,
    "unknown_workflow": 404,
    "unauthorized": 403,
    "stale": 409,
    "wrong_state": 409,
    "invalid_input": 400,
    "overloaded": 429,
    "rate_limited": 429,
}
Handler = Callable[[Request], Awaitable[Response]]


class Pages:
    """The handlers, sharing the settings, the link to the runtime and the templates."""

    def __init__(
        self,
        settings: UiSettings,
        link: RuntimeLink,
        sessions: Sessions,
        templates: Jinja2Templates,
    ) -> None:
        self.settings = settings
        self.link = link
        self.sessions = sessions
        self.templates = templates
        self.refused: Counter[str] = Counter()
        """Requests refused, by reason: bad input, the runtime's refusals, its silence."""

    # -- rendering ---------------------------------------------------------------------------

    async def render(
        self, request: Request, template: str, status: int = 200, **context: Any
    ) -> Response:
        inbox = None
        try:
            async with self.link.client() as client:
                inbox = len(await client.pending())
        except (ControlRefused, RuntimeUnavailable):
            inbox = None
        base = {
            "root": request.scope.get("root_path", ""),
            "csrf": self.sessions.csrf_of(request.cookies.get(COOKIE)) or "",
            "settings": self.settings,
            "inbox_count": inbox,
            "page_url": str(request.url.path)
            + (f"?{request.url.query}" if request.url.query else ""),
        }
        return self.templates.TemplateResponse(
            request, template, {**base, **context}, status_code=status
        )

    async def refusal(self, request: Request, status: int, reason: str, text: str) -> Response:
        self.refused[reason] += 1
        log.warning("ui.refused", path=request.url.path, reason=reason, status=status, detail=text)
        return await self.render(request, "error.html", status, status_code=status, message=text)

    def guarded(self, handler: Handler) -> Handler:
        """`handler`, with the runtime's refusals and bad input turned into pages that say so."""

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except ControlRefused as exc:
                status = STATUS_OF.get(exc.code, 400)
                return await self.refusal(request, status, exc.code, exc.message or exc.code)
            except RuntimeUnavailable as exc:
                return await self.refusal(request, 503, "runtime_unavailable", str(exc))
            except InputInvalid as exc:
                return await self.refusal(request, 400, "invalid_input", str(exc))

        return guarded

    def posted(self, handler: Callable[[Request, FormData], Awaitable[Response]]) -> Handler:
        """`handler` for a POST: refused unless the form carries the session's CSRF token."""

        async def checked(request: Request) -> Response:
            form = await request.form(max_files=0, max_fields=4_096)
            offered = request.headers.get("x-csrf-token") or str(form.get("csrf_token") or "")
            if not self.sessions.csrf_matches(request.cookies.get(COOKIE), offered):
                return await self.refusal(
                    request, 403, "csrf", "This form is not one this server gave you: reload "
                    "the page and try again.")  # fmt: skip
            return await handler(request, form)

        return self.guarded(checked)

    def back(self, request: Request, path: str) -> Response:
        return RedirectResponse(request.scope.get("root_path", "") + path, status_code=303)

    # -- runs --------------------------------------------------------------------------------

    async def runs(self, request: Request) -> Response:
        filters = RunFilters.parse(request.query_params)
        since, until = filters.window()
        async with self.link.client() as client:
            page = await client.runs_page(
                status=filters.status,
                workflow=filters.workflow,
                since=since,
                until=until,
                key=filters.key,
                value=filters.value,
                limit=RUNS_PAGE,
                offset=(filters.page - 1) * RUNS_PAGE,
            )
            workflows = await client.workflows()
        pages = max(1, math.ceil(page.total / RUNS_PAGE))
        return await self.render(
            request,
            "runs.html",
            filters=filters,
            runs=page.runs,
            total=page.total,
            pages=pages,
            workflows=[w.name for w in workflows],
            statuses=list(STATUSES),
        )

    async def bulk_confirm(self, request: Request) -> Response:
        filters = RunFilters.parse(request.query_params)
        action = _action(request.query_params.get("action", ""))
        chosen = await self._bulk_set(filters, action)
        return await self.render(
            request, "bulk.html", filters=filters, action=action, runs=chosen[:20],
            count=len(chosen),
        )  # fmt: skip

    async def bulk(self, request: Request, form: FormData) -> Response:
        filters = RunFilters.parse(_query_of(form))
        action = _action(str(form.get("action", "")))
        expected = count_field(str(form.get("count", "")), "count")
        chosen = await self._bulk_set(filters, action)
        done: list[str] = []
        failed: list[tuple[str, str]] = []
        async with self.link.client() as client:
            for run in chosen[:expected]:
                try:
                    if action == "cancel":
                        reason = f"bulk cancel from the page ({filters.described})"
                        await client.cancel_run(run.run_id, reason)
                    else:
                        await client.resume_run(run.run_id)
                    done.append(run.run_id)
                except ControlRefused as exc:
                    failed.append((run.run_id, exc.message or exc.code))
        log.info("ui.bulk", action=action, filters=filters.described, done=len(done),
                 refused=len(failed))  # fmt: skip
        return await self.render(
            request, "bulk_done.html", filters=filters, action=action, done=done, failed=failed,
            left=max(0, len(chosen) - expected),
        )  # fmt: skip

    async def _bulk_set(self, filters: RunFilters, action: str) -> list[RunSummary]:
        """The runs of the filtered set the action applies to: those not ended (cancel), or
        the stuck ones (resume)."""
        since, until = filters.window()
        async with self.link.client() as client:
            page = await client.runs_page(
                status=filters.status, workflow=filters.workflow, since=since, until=until,
                key=filters.key, value=filters.value, limit=BULK_LIMIT, offset=0,
            )  # fmt: skip
        if action == "cancel":
            return [r for r in page.runs if r.status not in TERMINAL_STATUSES]
        return [r for r in page.runs if r.status == "stuck"]

    # -- one run -----------------------------------------------------------------------------

    async def run(self, request: Request) -> Response:
        run_id = name_field(request.path_params["run_id"], "run")
        at_text = request.query_params.get("at") or ""
        at = count_field(at_text, "at") if at_text else None
        async with self.link.client() as client:
            latest = await client.get_run(run_id)
            record = (
                latest if at is None or at == latest.seq else await client.get_run(run_id, at=at)
            )
            workflows = await client.workflows()
        shape = _shape_of(workflows, record)
        entries = record.history
        pages = max(1, math.ceil(len(entries) / HISTORY_PAGE))
        page_text = request.query_params.get("page") or ""
        page = min(pages, count_field(page_text, "page")) if page_text else pages
        page = max(1, page)
        shown = entries[(page - 1) * HISTORY_PAGE : page * HISTORY_PAGE]
        statuses = {name: step.status for name, step in record.steps.items()}
        graph = "" if shape is None else graph_svg(shape.nodes, shape.edges, statuses)
        return await self.render(
            request,
            "run.html",
            record=record,
            latest_seq=latest.seq,
            time_travel=record.seq != latest.seq,
            graph=graph,
            shape=shape,
            history=shown,
            history_page=page,
            history_pages=pages,
            live=record.seq == latest.seq and latest.status not in TERMINAL_STATUSES,
            ended=latest.status in TERMINAL_STATUSES,
        )

    async def cancel(self, request: Request, form: FormData) -> Response:
        run_id = name_field(request.path_params["run_id"], "run")
        async with self.link.client() as client:
            await client.cancel_run(
                run_id, str(form.get("reason", "")) or "cancelled from the page"
            )
        return self.back(request, f"/runs/{run_id}")

    async def resume(self, request: Request, form: FormData) -> Response:
        run_id = name_field(request.path_params["run_id"], "run")
        async with self.link.client() as client:
            await client.resume_run(run_id)
        return self.back(request, f"/runs/{run_id}")

    async def fork(self, request: Request, form: FormData) -> Response:
        run_id = name_field(request.path_params["run_id"], "run")
        at = count_field(str(form.get("at", "")), "at")
        values = as_data(key_json_lines(str(form.get("values", ""))))
        reason = str(form.get("reason", ""))
        async with self.link.client() as client:
            child = await client.fork_run(run_id, at, values=values, reason=reason)
        log.info("ui.forked", run_id=run_id, at=at, fork=child, edited=sorted(values))
        return self.back(request, f"/runs/{child}")

    # -- decisions ---------------------------------------------------------------------------

    async def inbox(self, request: Request) -> Response:
        async with self.link.client() as client:
            pending = await client.pending()
        return await self.render(request, "inbox.html", pending=pending, json=_json)

    async def inbox_count(self, request: Request) -> Response:
        return await self.render(request, "inbox_count.html")

    async def decide(self, request: Request, form: FormData) -> Response:
        run_id = name_field(str(form.get("run_id", "")), "run")
        step = name_field(str(form.get("step", "")), "step")
        decision = _decision(str(form.get("decision", "")))
        async with self.link.client() as client:
            shown = _the_decision(await client.pending(run_id), step)
            # The runtime checks the version the person saw, not the one open now.
            seen = msgspec.structs.replace(
                shown,
                attempt=count_field(str(form.get("attempt", "")), "attempt"),
                digest=str(form.get("digest", "")),
            )
            fields = [(name, str(value)) for name, value in form.multi_items()]
            values: dict[str, Any] = {}
            if decision == "approve":
                values = changed_values(fields, shown.reviewed)
            elif decision == "skip":
                values = changed_values(fields, {})
            values |= key_json_lines(str(form.get("extra", "")))
            await client.decide(
                seen,
                decision,
                comment=str(form.get("comment", "")),
                values=as_data(values),
            )
        log.info("ui.decided", run_id=run_id, step=step, decision=decision, edited=sorted(values))
        return self.back(request, f"/runs/{run_id}")

    # -- workflows and agents ----------------------------------------------------------------

    async def workflows(self, request: Request) -> Response:
        async with self.link.client() as client:
            workflows = await client.workflows()
        return await self.render(request, "workflows.html", workflows=workflows)

    async def workflow(self, request: Request) -> Response:
        name = name_field(request.path_params["name"], "workflow")
        async with self.link.client() as client:
            workflows = await client.workflows()
            shape = next((w for w in workflows if w.name == name), None)
            if shape is None:
                raise ControlRefused("unknown_workflow", f"no workflow named {name!r} is loaded")
            figures = await client.report(name)
        return await self.render(
            request,
            "workflow.html",
            shape=shape,
            graph=graph_svg(shape.nodes, shape.edges),
            report=figures,
            plots=report_plots(figures),
        )

    async def agents(self, request: Request) -> Response:
        async with self.link.client() as client:
            seen = await client.agents()
        return await self.render(request, "agents.html", agents=seen.agents, roles=seen.roles)


STATUSES = ("running", "waiting", "stuck", "completed", "failed", "halted", "cancelled")


def _decision(text: str) -> DecisionKind:
    for kind in get_args(DecisionKind):
        if text == kind:
            return cast("DecisionKind", kind)
    known = ", ".join(get_args(DecisionKind))
    raise FormInvalid(f"decision: {text[:20]!r} is not one of {known}")


def _action(text: str) -> str:
    if text not in ("cancel", "resume"):
        raise FormInvalid(f"action: {text[:20]!r} is not cancel or resume")
    return text


def _query_of(form: FormData) -> QueryParams:
    return QueryParams([(k, str(v)) for k, v in form.multi_items() if k in _FILTER_FIELDS])


_FILTER_FIELDS = frozenset({"status", "workflow", "since", "until", "key", "value"})


def _shape_of(workflows: list[WorkflowView], record: RunRecord) -> WorkflowView | None:
    same = [w for w in workflows if w.name == record.workflow]
    exact = [w for w in same if w.fingerprint == record.fingerprint]
    chosen = exact or same
    return chosen[0] if chosen else None


def _the_decision(pending: list[PendingDecision], step: str) -> PendingDecision:
    for decision in pending:
        if decision.step == step:
            return decision
    raise ControlRefused("stale", f"no decision is open on step {step!r} any more")


def _json(value: object) -> str:
    return msgspec.json.format(msgspec.json.encode(value), indent=2).decode()
