"""The board's web server (aiohttp): the grid, a commit's page, the timeline, live updates by Server-Sent Events, and
/healthz. Read-only: nothing here changes the pipeline. The feed's items are folded in on the event loop, so the model
needs no lock."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from aiohttp import web
from markupsafe import Markup

from streams.board.commit_page import Step, Target, entry_step, fact_step, target
from streams.board.entries import Entry, FactRef, Push
from streams.board.entries import fact as fact_from
from streams.board.feed import FeedStatus
from streams.board.model import Board, Cell
from streams.board.pages import Explanations, Pages, ago, cell_view
from streams.board.records import Fetched, RecordFetcher
from streams.board.worker_client import WorkerClient, WorkerUnreachable
from streams.domain.policy import normalise_repository

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
STATIC = {"board.css": "text/css", "board.js": "text/javascript"}
QUEUE_LIMIT = 1000  # messages a slow live client may lag behind before it is dropped (its browser reconnects)


@dataclass(eq=False)  # each open page is its own subscriber
class _Subscriber:
    view: str  # grid|timeline|commit
    service: str
    kind: str
    commit: str
    queue: asyncio.Queue[dict[str, Any] | None]


class BoardServer:
    def __init__(
        self,
        board: Board,
        *,
        fetcher: RecordFetcher | None,
        worker: WorkerClient | None,
        feed_status: Callable[[], FeedStatus],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        explain_interval_s: float = 2.0,
    ) -> None:
        self.board, self._fetcher, self._worker = board, fetcher, worker
        self._feed_status, self._clock = feed_status, clock
        self._pages = Pages()
        self.explanations = Explanations()
        self._subscribers: set[_Subscriber] = set()
        self._rendered: dict[str, tuple[tuple[Any, ...], Markup]] = {}  # dom id -> (what it showed, its HTML)
        self._explain_interval = explain_interval_s
        self._tasks: list[asyncio.Task[None]] = []

    # -- the app -------------------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.on_response_prepare.append(_headers)
        app.router.add_get("/", self.grid)
        app.router.add_get("/timeline", self.timeline)
        app.router.add_get("/commits/{owner}/{repo}/{commit}", self.commit)
        app.router.add_get("/live", self.live)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/static/{name}", self.static)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _start(self, app: web.Application) -> None:
        if self._worker is not None:
            self._tasks.append(asyncio.create_task(self._explain_forever()))

    async def _cleanup(self, app: web.Application) -> None:
        for task in self._tasks:
            task.cancel()
        for subscriber in list(self._subscribers):
            subscriber.queue.put_nowait(None)
        if self._worker is not None:
            await self._worker.close()

    # -- folding the feed in -------------------------------------------------------------------------------------

    def publish(self, item: Entry | Push) -> None:
        """Fold an item in and tell the live pages (on the event loop)."""
        cells = self.board.apply(item) if isinstance(item, Entry) else self.board.add_push(item)
        self._announce(item if isinstance(item, Entry) else None, cells, commit=item.commit)

    def _announce(self, entry: Entry | None, cells: Iterable[Cell], commit: str) -> None:
        if not self._subscribers:
            return
        now = self._clock()
        rendered_cells: dict[str, str] | None = None
        row: str | None = None
        for subscriber in list(self._subscribers):
            message: dict[str, Any] = {}
            if subscriber.view == "grid":
                if rendered_cells is None:
                    rendered_cells = {c.dom_id: str(self._cell_html(c, now)) for c in cells}
                message["cells"] = rendered_cells
            elif subscriber.view == "timeline" and entry is not None:
                if (not subscriber.service or subscriber.service == entry.service) and (
                    not subscriber.kind or subscriber.kind == entry.kind
                ):
                    row = row if row is not None else self._pages.row(entry, now)
                    message["row"] = row
            elif subscriber.view == "commit" and subscriber.commit == commit:
                message["reload"] = True
            if not any(message.values()):
                continue
            try:
                subscriber.queue.put_nowait(message)
            except asyncio.QueueFull:
                self._subscribers.discard(subscriber)
                subscriber.queue = asyncio.Queue(1)
                subscriber.queue.put_nowait(None)

    # -- pages ---------------------------------------------------------------------------------------------------

    def _common(self, view: str, title: str, live_query: str = "") -> dict[str, Any]:
        status = self._feed_status()
        problems = []
        if not status.connected:
            problems.append(f"broker unreachable: the board shows what it read before ({status.error or 'connecting'})")
        elif not status.caught_up:
            problems.append("still reading the log: what is shown is not complete yet")
        if self.explanations.error:
            problems.append(f"worker unreachable: what waiting commits miss is not known ({self.explanations.error})")
        return {
            "view": view,
            "title": title,
            "live_query": f"view={view}" + (f"&{live_query}" if live_query else ""),
            "status": "live: connecting…",
            "problems": problems,
            "refused": status.refused,
            "now": self._clock(),
        }

    def _cell_html(self, cell: Cell, now: datetime) -> Markup:
        """The cell rendered, reused while nothing it shows changed (its version, how long ago, a freeze)."""
        frozen = cell.service.frozen(now)
        since = ago(cell.running.time, now) if cell.running is not None else ""
        key = (cell.version, since, frozen, bool(self.explanations.error))
        cached = self._rendered.get(cell.dom_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        html = Markup(self._pages.cell(cell_view(self.board, cell, self.explanations, now), now))  # noqa: S704 - autoescaped by the template
        self._rendered[cell.dom_id] = (key, html)
        return html

    async def grid(self, request: web.Request) -> web.Response:
        now = self._clock()
        environments: list[str] = []
        rows: dict[str, dict[str, Markup]] = {}
        for (service, environment), cell in self.board.cells.items():
            if environment not in environments:
                environments.append(environment)
            rows.setdefault(service, {})[environment] = self._cell_html(cell, now)
        html = self._pages.render(
            "grid.html",
            **self._common("grid", "Services"),
            cells=list(rows.items()),
            environments=environments,
            any_entries=bool(self.board.timeline),
        )
        return web.Response(text=html, content_type="text/html")

    async def timeline(self, request: web.Request) -> web.Response:
        service = request.query.get("service", "")
        kind = request.query.get("kind", "")
        entries = list(self.board.recent(service or None, kind or None))
        query = "&".join(f"{k}={v}" for k, v in (("service", service), ("kind", kind)) if v)
        html = self._pages.render(
            "timeline.html",
            **self._common("timeline", "Timeline", query),
            services=[s.name for s in self.board.policies.services],
            service=service,
            kind=kind,
            entries=entries,
        )
        return web.Response(text=html, content_type="text/html")

    async def commit(self, request: web.Request) -> web.Response:
        owner, repo, commit = request.match_info["owner"], request.match_info["repo"], request.match_info["commit"]
        repository = normalise_repository(f"{owner}/{repo}")
        commit = commit.lower()
        if repository is None or not all(c in "0123456789abcdef" for c in commit) or not 4 <= len(commit) <= 64:
            return self._error(404, "Not a commit", f"{owner}/{repo}/{commit} names no repository and commit")
        if len(commit) not in (40, 64):
            found = self.board.find_commit(repository, commit)
            if len(found) == 1:
                raise web.HTTPFound(f"/commits/{repository.removeprefix('github.com/')}/{found[0]}")
            message = (
                f"{commit} is the start of {len(found)} known commits of {repository}"
                if found
                else (f"no known commit of {repository} starts with {commit}")
            )
            return self._error(404 if not found else 300, "Which commit?", message, repository, found)
        entries = self.board.commit_entries(repository, commit)
        document, worker_problem = await self._explain_now(repository, commit)
        targets = self._targets(repository, commit, entries, document)
        chain = await self._chain(entries, document)
        html = self._pages.render(
            "commit.html",
            **self._common("commit", f"Commit {commit[:7]}", f"commit={commit}"),
            repository=repository,
            commit=commit,
            push=self.board.push_of(repository, commit),
            targets=targets,
            chain=chain,
            worker_problem=worker_problem,
        )
        return web.Response(text=html, content_type="text/html")

    def _error(
        self, status: int, title: str, message: str, repository: str = "", candidates: Iterable[str] = ()
    ) -> web.Response:
        html = self._pages.render(
            "error.html",
            **self._common("error", title),
            message=message,
            repository=repository,
            candidates=list(candidates),
        )
        return web.Response(text=html, status=status, content_type="text/html")

    async def _explain_now(self, repository: str, commit: str) -> tuple[dict[str, Any] | None, str]:
        if self._worker is None:
            return None, "no worker configured"
        try:
            document = await self._worker.explain(repository, commit)
        except WorkerUnreachable as e:
            return None, f"worker unreachable: {e}"
        return document, ""

    def _targets(
        self, repository: str, commit: str, entries: list[Entry], document: dict[str, Any] | None
    ) -> list[Target]:
        targets = []
        explained = {s.get("service"): s for s in (document or {}).get("services", [])}
        for service in self.board.policies.for_repository(repository):
            for index, environment in enumerate(service.environments):
                here = [e for e in entries if e.target == (service.name, environment.name)]
                decided = next((e for e in reversed(here) if e.stream == "decision"), None)
                outcome = next((e for e in reversed(here) if e.stream == "outcome"), None)
                targets.append(
                    target(service.name, environment.name, index, decided, outcome, explained.get(service.name))
                )
        return targets

    async def _chain(self, entries: list[Entry], document: dict[str, Any] | None) -> list[Step]:
        facts: dict[str, FactRef] = {}
        for entry in entries:
            for fact in entry.facts:
                facts.setdefault(fact.event_id, fact)
        if not facts and document is not None:
            for service in document.get("services", []):
                for raw in [*service.get("present", []), *service.get("other_facts", [])]:
                    fact = fact_from(raw)
                    facts.setdefault(fact.event_id, fact)
        fetched = await asyncio.gather(*(self._fetch(fact) for fact in facts.values()))
        steps = [fact_step(fact, got) for fact, got in zip(facts.values(), fetched, strict=True)]
        steps += [entry_step(entry) for entry in entries]
        return sorted(steps, key=lambda s: s.time)

    async def _fetch(self, fact: FactRef) -> Fetched:
        if self._fetcher is None or fact.position is None:
            return Fetched(None, problem="where it is in the log is not known")
        return await asyncio.to_thread(self._fetcher.fetch, fact.position)

    # -- live ----------------------------------------------------------------------------------------------------

    async def live(self, request: web.Request) -> web.StreamResponse:
        subscriber = _Subscriber(
            request.query.get("view", "grid"),
            request.query.get("service", ""),
            request.query.get("kind", ""),
            request.query.get("commit", ""),
            asyncio.Queue(QUEUE_LIMIT),
        )
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        self._subscribers.add(subscriber)
        try:
            await response.write(b"retry: 1000\n: connected\n\n")
            while True:
                try:
                    message = await asyncio.wait_for(subscriber.queue.get(), timeout=15)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if message is None:
                    break
                await response.write(f"event: entry\ndata: {json.dumps(message)}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._subscribers.discard(subscriber)
        return response

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound
        body = resources.files("streams.board").joinpath("static", name).read_bytes()
        return web.Response(body=body, content_type=STATIC[name], headers={"Cache-Control": "max-age=300"})

    # -- what waiting commits miss -------------------------------------------------------------------------------

    async def _explain_forever(self) -> None:
        while True:
            try:
                await self.refresh_explanations()
            except Exception:  # the refresher must outlive any one bad answer
                log.exception("explaining waiting commits failed")
            await asyncio.sleep(self._explain_interval)

    async def refresh_explanations(self, limit: int = 100) -> None:
        """Ask the worker about every waiting commit (up to `limit`); tell live grids where an answer changed."""
        assert self._worker is not None
        now = self._clock()
        waiting: dict[tuple[str, str], list[Cell]] = {}
        for cell in self.board.cells.values():
            for commit, _ in self.board.waiting(cell, now):
                waiting.setdefault((cell.service.repository, commit), []).append(cell)
        keys = list(waiting)[:limit]
        results = await asyncio.gather(*(self._worker.explain(r, c) for r, c in keys), return_exceptions=True)
        changed: list[Cell] = []
        errors = [r for r in results if isinstance(r, WorkerUnreachable)]
        error = str(errors[0]) if errors else ""
        if bool(error) != bool(self.explanations.error):
            changed += [cell for cells in waiting.values() for cell in cells]  # "worker unreachable" comes or goes
        self.explanations.error = error
        for key, result in zip(keys, results, strict=True):
            if isinstance(result, dict) and self.explanations.documents.get(key) != result:
                self.explanations.documents[key] = result
                changed += waiting[key]
        for key in set(self.explanations.documents) - set(waiting):
            del self.explanations.documents[key]
        if changed:
            self._announce(None, self.board.touch(changed), commit="")


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)
