"""The pool that runs admitted tasks and tool calls, at most `concurrency` at once."""

from __future__ import annotations

import asyncio
import contextvars
import math
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Literal

import anyio
import anyio.abc
from msgspec import structs
from structlog.typing import FilteringBoundLogger

from actors._agent import Agent
from actors._calls import Attached, CallJob, CallsInFlight
from actors._context import Context, ModelReporter, Models, ToolCaller, Tools
from actors._kill_points import KillPoints
from actors._ledger import Ledger
from actors._spans import Spans
from actors._statistics import Counters
from actors._steps import Outcome, Stopped, failure, run_task, stopped
from actors._task import Task
from actors._toolhost import ToolHost, serve_call
from protocols import (
    Assign,
    Codec,
    RuntimeMessage,
    StepResult,
    TaskRef,
    ToolCall,
    ToolReply,
)

TaskKey = tuple[str, str, int]


Job = Assign | CallJob


class _Started:
    """A job that began on the caller's stack and now waits on `yielded`; a worker awaits the rest.

    Awaiting it runs the job's coroutine one step at a time in the awaiting task, in the
    job's own context, passing up what it waits on and passing down what the task sends
    or throws (cancellation included), exactly as if the task had run it from the start.
    """

    __slots__ = ("_context", "_coro", "_yielded")

    def __init__(
        self, coro: Coroutine[Any, Any, None], yielded: object, context: contextvars.Context
    ) -> None:
        self._coro = coro
        self._yielded = yielded
        self._context = context

    def __await__(self) -> Generator[Any, Any, None]:
        coro, context, yielded = self._coro, self._context, self._yielded
        while True:
            try:
                sent = yield yielded
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - handed on to the job, not handled
                try:
                    yielded = context.run(coro.throw, exc)
                except StopIteration:
                    return
            else:
                try:
                    yielded = context.run(coro.send, sent)
                except StopIteration:
                    return


class Pool:
    """Admits jobs up to its capacity and runs each in one of `capacity` coroutines.

    What a job produces is encoded and handed to `send`, which must not block.
    """

    def __init__(
        self,
        actor: Agent | ToolHost,
        capacity: int,
        *,
        codec: Codec[RuntimeMessage],
        caller: ToolCaller,
        send: Callable[[bytes], None],
        reporter: ModelReporter | None = None,
        counters: Counters,
        log: FilteringBoundLogger,
        calls: CallsInFlight | None = None,
        ledger: Ledger | None = None,
        kill_points: KillPoints | None = None,
        spans: Spans | None = None,
    ) -> None:
        """`calls` are the keyed tool calls running on any connection of the process, which
        a repeat of one attaches to; by default this pool's alone. `reporter` hears the
        model calls of the tasks; by default nobody does."""
        self.capacity = capacity
        self._spans = spans
        self._kill_points = kill_points
        self._actor = actor
        self._ledger = ledger
        self._codec = codec
        self._caller = caller
        self._reporter = reporter
        self._send = send
        self._counters = counters
        self._log = log
        self._admitted = 0
        self._tasks: dict[TaskKey, anyio.CancelScope] = {}
        self._calls = CallsInFlight() if calls is None else calls
        self.session = 0
        """Counts the sessions with the runtime: replies go only to the session that asked,
        since a runtime that restarted numbers its calls anew."""
        self._running = False
        self._queue: deque[Job] = deque()
        self._idle: deque[tuple[asyncio.Task[Any], asyncio.Future[Job | _Started]]] = deque()
        """Coroutines waiting for a job, each with its task; handing one over wakes exactly it."""

    def log_as(self, session: str) -> None:
        """Name in what the steps and tool calls log the session the runtime records them under."""
        self._log = self._log.bind(session=session)

    @property
    def in_flight(self) -> int:
        """Jobs admitted and not finished, queued or running."""
        return self._admitted

    def running(self, key: TaskKey) -> bool:
        return key in self._tasks

    def running_tasks(self) -> list[TaskRef]:
        """The tasks admitted and not finished, for a new session to take up."""
        return [TaskRef(run_id=r, step=s, attempt=a) for r, s, a in self._tasks]

    def running_calls(self) -> list[str]:
        """The idempotency keys of the tool calls this pool's supervisor waits for: those
        admitted here and not finished, and those it asked again while another ran them."""
        return self._calls.keys_for(self)

    def new_session(self) -> None:
        """The runtime welcomed us again: what the previous session asked is answered to it
        no more; its repeats, asked again in this session, are."""
        self.session += 1

    def answer(self, frame: bytes) -> None:
        """Send a reply to this pool's supervisor."""
        self._send(frame)

    def attach(self, call: ToolCall) -> Attached:
        """Answer `call` with the reply of the call under its key that is already admitted,
        on this connection or another, when it finishes; `conflict` if that call had other
        arguments, `absent` if none is.

        A repeat arrives when the runtime restarted or lost us while the first call ran,
        or when another supervisor took the run over: running it again would be refused by
        the ledger as an unknown outcome.
        """
        return self._calls.attach(call, self)

    def admit(self, job: Assign | ToolCall) -> bool:
        """Start or queue `job` unless the pool is full or not running.

        Called outside any task (from the event loop's reader callback) with a
        coroutine idle, the job starts at once, as that coroutine's task: a step
        that never waits is answered before this returns, with no task switch.
        """
        if self._admitted >= self.capacity or not self._running:
            return False
        if isinstance(job, ToolCall):
            return self._admit(self._calls.admit(job, self))
        return self._admit(job)

    def _admit(self, job: Job) -> bool:
        scope = None
        deadline = math.inf
        if isinstance(job, Assign):
            scope = anyio.CancelScope()
            if job.timeout_ms:
                # The runtime's clock started at dispatch, so ours starts at arrival.
                deadline = asyncio.get_running_loop().time() + job.timeout_ms / 1000
            self._tasks[(job.run_id, job.step, job.attempt)] = scope
        self._admitted += 1
        while self._idle:
            worker, waiter = self._idle.popleft()
            if waiter.done():
                continue
            if asyncio.current_task() is not None:
                if scope is not None:
                    scope.deadline = deadline
                waiter.set_result(job)
            elif self._start(job, worker, waiter) and scope is not None:
                # Armed only now: a step that finished at once needed no timer. The
                # worker is already woken, so a deadline already past cancels it there.
                scope.deadline = deadline
            return True
        if scope is not None:
            scope.deadline = deadline
        self._queue.append(job)
        return True

    def cancel(self, key: TaskKey) -> None:
        """Cancel the task `key`, queued or running; it will send nothing."""
        scope = self._tasks.get(key)
        if scope is not None:
            scope.cancel()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run the pool's coroutines until cancelled; started once it admits jobs."""
        self._running = True
        try:
            async with anyio.create_task_group() as tg:
                for _ in range(self.capacity):
                    tg.start_soon(self._serve)
                task_status.started()
        finally:
            self._running = False

    def _start(
        self, job: Job, worker: asyncio.Task[Any], waiter: asyncio.Future[Job | _Started]
    ) -> bool:
        """Run `job` as `worker` until it first waits; True if `worker` must finish it.

        `worker` is idle, so lending it is safe: what the job binds to its task
        (cancel scopes, task groups) stays with the task that will resume it.
        """
        coro = self._run(job)
        context = contextvars.copy_context()
        loop = waiter.get_loop()
        # The job runs as `worker` so that anyio and sniffio find the task they expect.
        asyncio.tasks._enter_task(loop, worker)
        try:
            yielded = context.run(coro.send, None)
        except StopIteration:
            self._idle.appendleft((worker, waiter))
            return False
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - raised in `worker`, as if it had run the job
            waiter.set_exception(exc)
            return True
        finally:
            asyncio.tasks._leave_task(loop, worker)
        waiter.set_result(_Started(coro, yielded, context))
        return True

    async def _next_job(self, worker: asyncio.Task[Any]) -> Job | _Started:
        if self._queue:
            return self._queue.popleft()
        # A bare future per wait: far cheaper per hand-over than a memory stream.
        waiter: asyncio.Future[Job | _Started] = asyncio.get_running_loop().create_future()
        self._idle.append((worker, waiter))
        return await waiter

    async def _serve(self) -> None:
        worker = asyncio.current_task()
        assert worker is not None
        while True:
            job = await self._next_job(worker)
            if isinstance(job, _Started):
                await job
            else:
                await self._run(job)

    async def _run(self, job: Job) -> None:
        try:
            if isinstance(job, Assign):
                await self._run_task(job)
            else:
                await self._run_call(job)
        finally:
            self._admitted -= 1

    async def _run_task(self, assign: Assign) -> None:
        assert isinstance(self._actor, Agent)
        key = (assign.run_id, assign.step, assign.attempt)
        scope = self._tasks[key]
        task = Task.from_assign(assign)
        try:
            if scope.cancel_called:
                outcome: Outcome | Stopped = stopped(scope)
            else:
                self._counters.tasks_started += 1
                ctx = Context(
                    task,
                    Tools(task, self._caller),
                    self._log,
                    Models(task, self._reporter),
                )
                outcome = await run_task(
                    self._actor, task, ctx, scope, spans=self._spans, trace=assign.trace
                )
        finally:
            del self._tasks[key]
        if outcome == "refused":
            # A failure all the same, though the runtime, not this actor, reports it.
            self._counters.tasks_failed += 1
            return
        if isinstance(outcome, str):
            self._log.info(
                _STOPPED_EVENTS[outcome], run_id=task.run_id, step=task.step, attempt=task.attempt
            )
            return
        frame = self._codec.encode(outcome)
        if len(frame) > self._codec.max_frame:
            text = f"the result is {len(frame)} bytes; the limit is {self._codec.max_frame}"
            outcome = failure(task, "invalid_output", text)
            frame = self._codec.encode(outcome)
        if isinstance(outcome, StepResult):
            self._counters.tasks_succeeded += 1
        else:
            self._counters.tasks_failed += 1
        self._send(frame)

    async def _run_call(self, job: CallJob) -> None:
        assert isinstance(self._actor, ToolHost)
        call = job.call
        self._counters.tool_calls += 1
        try:
            reply = await serve_call(
                self._actor,
                call,
                ledger=self._ledger,
                kill_points=self._kill_points,
                log=self._log,
                spans=self._spans,
            )
        finally:
            self._calls.finish(job)
        frame = self._codec.encode(reply)
        if len(frame) > self._codec.max_frame:
            text = f"the result is {len(frame)} bytes; the limit is {self._codec.max_frame}"
            reply = ToolReply(call_id=call.call_id, ok=False, error="tool_failed", message=text)
            frame = self._codec.encode(reply)
        for call_id, session, asker in [(call.call_id, job.session, job.asker), *job.repeats]:
            if session != asker.session:
                self._log.info(
                    "tool.reply_dropped",
                    run_id=call.run_id,
                    step=call.step,
                    tool=call.tool,
                    idempotency_key=call.idempotency_key,
                    reason="asked in an earlier session with the runtime",
                )
                continue
            if call_id == call.call_id and asker is self:
                self._send(frame)
            else:
                asker.answer(self._codec.encode(structs.replace(reply, call_id=call_id)))


_STOPPED_EVENTS: dict[Literal["cancelled", "timed_out"], str] = {
    "cancelled": "actor.task_cancelled",
    "timed_out": "actor.task_timed_out",
}
