"""What the runtime tells about its runs: logs, metrics, traces and reports.

The supervisor hands every history entry to its `Observers`: the `RunLog`,
`PrometheusMetrics` and the `RunTracer`; `report` reads runs folded from a
journal and says where a workflow breaks, as a `protocols.Report`.
"""

from runtime.observe._logging import LEVELS as LEVELS
from runtime.observe._logging import LogFormat as LogFormat
from runtime.observe._logging import configure_logging as configure_logging
from runtime.observe._observers import Gauges as Gauges
from runtime.observe._observers import Metrics as Metrics
from runtime.observe._observers import Observer as Observer
from runtime.observe._observers import Observers as Observers
from runtime.observe._observers import Tracer as Tracer
from runtime.observe._report import report as report
from runtime.observe._report_plot import PlotUnavailable as PlotUnavailable
from runtime.observe._report_plot import plot_report as plot_report
from runtime.observe._report_render import render_report as render_report
from runtime.observe._run_log import RunLog as RunLog
from runtime.observe._run_log import ending_level as ending_level
from runtime.observe._trace_ids import span_id as span_id
from runtime.observe._trace_ids import trace_id as trace_id
from runtime.observe._trace_ids import traceparent as traceparent

__all__ = [
    "LEVELS",
    "Gauges",
    "LogFormat",
    "Metrics",
    "Observer",
    "Observers",
    "PlotUnavailable",
    "RunLog",
    "Tracer",
    "configure_logging",
    "ending_level",
    "plot_report",
    "render_report",
    "report",
    "span_id",
    "trace_id",
    "traceparent",
]
