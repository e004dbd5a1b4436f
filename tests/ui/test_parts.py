"""The page server's parts that need no runtime: filters, forms, sessions, the graph's layout."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from starlette.datastructures import QueryParams

from protocols import DiagramEdge, DiagramNode
from runtime.ui._filters import FilterInvalid, RunFilters
from runtime.ui._forms import FormInvalid, changed_values, key_json_lines
from runtime.ui._graph_svg import graph_svg, layers
from runtime.ui._sessions import MAX_SESSIONS, Sessions


class TestFilters:
    def test_an_age_and_a_date_become_moments(self) -> None:
        filters = RunFilters.parse(QueryParams("since=12h&until=2026-12-01T09:30&status=waiting"))
        since, until = filters.window(now=1_000_000.0)
        assert since == 1_000_000.0 - 12 * 3_600
        assert until == datetime(2026, 12, 1, 9, 30, tzinfo=UTC).timestamp()
        assert filters.query(page=3) == "status=waiting&since=12h&until=2026-12-01T09%3A30&page=3"

    @pytest.mark.parametrize(
        ("query", "name"),
        [
            ("status=lost", "status"),
            ("since=soon", "since"),
            ("page=0", "page"),
            ("key=a%20b", "key"),
            ("value=7", "value"),
        ],
    )
    def test_a_filter_that_cannot_apply_names_itself(self, query: str, name: str) -> None:
        with pytest.raises(FilterInvalid) as refused:
            RunFilters.parse(QueryParams(query))
        assert refused.value.name == name


class TestForms:
    def test_key_json_lines_and_what_changed(self) -> None:
        assert key_json_lines('amount=120\n\n note = "ok"') == {"amount": 120, "note": "ok"}
        with pytest.raises(FormInvalid, match="line 1: expected KEY=JSON"):
            key_json_lines("amount 120")
        with pytest.raises(FormInvalid, match="amount: the value is not JSON"):
            key_json_lines("amount=twelve")
        fields = [("value:amount", "120"), ("value:note", '"same"'), ("comment", "x")]
        assert changed_values(fields, {"amount": 100, "note": "same"}) == {"amount": 120}


class TestSessions:
    def test_the_token_opens_sessions_each_with_its_csrf_token_and_old_ones_go(self) -> None:
        sessions = Sessions("secret")
        assert sessions.token_matches("secret")
        assert not sessions.token_matches("secreT")
        first = sessions.open()
        token = sessions.csrf_of(first)
        assert token is not None
        assert sessions.csrf_matches(first, token)
        assert not sessions.csrf_matches(first, "")
        assert not sessions.csrf_matches("made-up", token)
        for _ in range(MAX_SESSIONS):
            sessions.open()
        assert sessions.csrf_of(first) is None


class TestGraph:
    NODES = [
        DiagramNode(name="work", kind="step", role="ticker"),
        DiagramNode(name="again", kind="decision"),
        DiagramNode(name="done", kind="step", role="ticker"),
    ]
    EDGES = [
        DiagramEdge(source="work", target="again"),
        DiagramEdge(source="again", target="work", label="n < 3", kind="back"),
        DiagramEdge(source="again", target="done", label="default", kind="route"),
    ]

    def test_a_loop_runs_back_up_and_the_rest_points_down(self) -> None:
        assert layers(self.NODES, self.EDGES) == {"work": 0, "again": 1, "done": 2}

    def test_each_step_is_a_labelled_link_coloured_by_its_status(self) -> None:
        svg = graph_svg(self.NODES, self.EDGES, {"work": "completed", "done": "pending"})
        assert 'class="node node-step st-completed"' in svg
        assert 'class="node node-decision st-none"' in svg
        assert 'href="#step-done"' in svg
        assert 'aria-label="work; role ticker; status completed"' in svg
        assert svg.count('class="edge edge-back"') == 1
        assert "n &lt; 3" in svg
