"""The wire: every message of both planes, their values, and the one codec.

This package knows nothing of `runtime` or `actors`; both depend on it. Every
message is a frozen, tagged `msgspec.Struct` in a union; nothing else in the
code base builds or parses bytes.
"""

from protocols._agent_plane import ActorKind as ActorKind
from protocols._agent_plane import ActorMessage as ActorMessage
from protocols._agent_plane import Assign as Assign
from protocols._agent_plane import Bye as Bye
from protocols._agent_plane import Cancel as Cancel
from protocols._agent_plane import Error as Error
from protocols._agent_plane import FailureReason as FailureReason
from protocols._agent_plane import Heartbeat as Heartbeat
from protocols._agent_plane import ModelCall as ModelCall
from protocols._agent_plane import ModelReply as ModelReply
from protocols._agent_plane import OutputType as OutputType
from protocols._agent_plane import Peers as Peers
from protocols._agent_plane import Register as Register
from protocols._agent_plane import RuntimeMessage as RuntimeMessage
from protocols._agent_plane import StepFailure as StepFailure
from protocols._agent_plane import StepResult as StepResult
from protocols._agent_plane import TaskRef as TaskRef
from protocols._agent_plane import ToolCall as ToolCall
from protocols._agent_plane import ToolReply as ToolReply
from protocols._agent_plane import ToolSpec as ToolSpec
from protocols._agent_plane import Welcome as Welcome
from protocols._base import PROTOCOL_VERSION as PROTOCOL_VERSION
from protocols._base import ErrorCode as ErrorCode
from protocols._base import Message as Message
from protocols._codec import DEFAULT_MAX_FRAME as DEFAULT_MAX_FRAME
from protocols._codec import Codec as Codec
from protocols._codec import ProtocolError as ProtocolError
from protocols._codec import actor_side_codec as actor_side_codec
from protocols._codec import client_side_control_codec as client_side_control_codec
from protocols._codec import protocol_schema as protocol_schema
from protocols._codec import runtime_side_agent_codec as runtime_side_agent_codec
from protocols._codec import runtime_side_control_codec as runtime_side_control_codec
from protocols._control_plane import AgentsReply as AgentsReply
from protocols._control_plane import AgentView as AgentView
from protocols._control_plane import CancelRun as CancelRun
from protocols._control_plane import Changed as Changed
from protocols._control_plane import ClusterMember as ClusterMember
from protocols._control_plane import ControlError as ControlError
from protocols._control_plane import ControlReply as ControlReply
from protocols._control_plane import ControlRequest as ControlRequest
from protocols._control_plane import Decide as Decide
from protocols._control_plane import DiagramEdge as DiagramEdge
from protocols._control_plane import DiagramNode as DiagramNode
from protocols._control_plane import ForkRun as ForkRun
from protocols._control_plane import GetReport as GetReport
from protocols._control_plane import GetRun as GetRun
from protocols._control_plane import ListAgents as ListAgents
from protocols._control_plane import ListMembers as ListMembers
from protocols._control_plane import ListPending as ListPending
from protocols._control_plane import ListRuns as ListRuns
from protocols._control_plane import ListWorkflows as ListWorkflows
from protocols._control_plane import MembersReply as MembersReply
from protocols._control_plane import PendingReply as PendingReply
from protocols._control_plane import ReportReply as ReportReply
from protocols._control_plane import ResumeRun as ResumeRun
from protocols._control_plane import RoleView as RoleView
from protocols._control_plane import RunAccepted as RunAccepted
from protocols._control_plane import RunReply as RunReply
from protocols._control_plane import RunsReply as RunsReply
from protocols._control_plane import StartRun as StartRun
from protocols._control_plane import TakeoverSeen as TakeoverSeen
from protocols._control_plane import WaitRun as WaitRun
from protocols._control_plane import Watch as Watch
from protocols._control_plane import WorkflowsReply as WorkflowsReply
from protocols._control_plane import WorkflowView as WorkflowView
from protocols._curve import WELL_KNOWN_TEST_KEYS as WELL_KNOWN_TEST_KEYS
from protocols._curve import ClientKeys as ClientKeys
from protocols._curve import ServerKeys as ServerKeys
from protocols._curve import is_z85_key as is_z85_key
from protocols._endpoints import MAX_ENDPOINT as MAX_ENDPOINT
from protocols._endpoints import MAX_PEERS as MAX_PEERS
from protocols._endpoints import Endpoint as Endpoint
from protocols._endpoints import is_loopback as is_loopback
from protocols._record import TERMINAL_STATUSES as TERMINAL_STATUSES
from protocols._record import AttemptOutcome as AttemptOutcome
from protocols._record import AttemptView as AttemptView
from protocols._record import DecisionKind as DecisionKind
from protocols._record import FailureKind as FailureKind
from protocols._record import HistoryEntry as HistoryEntry
from protocols._record import PendingDecision as PendingDecision
from protocols._record import Provenance as Provenance
from protocols._record import RunRecord as RunRecord
from protocols._record import RunStatus as RunStatus
from protocols._record import RunSummary as RunSummary
from protocols._record import StepStatus as StepStatus
from protocols._record import StepView as StepView
from protocols._report import Cluster as Cluster
from protocols._report import Report as Report
from protocols._report import StepFigures as StepFigures
from protocols._values import MAX_ITEMS as MAX_ITEMS
from protocols._values import MAX_NAME as MAX_NAME
from protocols._values import MAX_TEXT as MAX_TEXT
from protocols._values import VALUE_DEPTH as VALUE_DEPTH
from protocols._values import Arguments as Arguments
from protocols._values import Data as Data
from protocols._values import Name as Name
from protocols._values import Text as Text
from protocols._values import Value as Value
from protocols._values import clip as clip

__all__ = [
    "DEFAULT_MAX_FRAME",
    "MAX_ENDPOINT",
    "MAX_ITEMS",
    "MAX_NAME",
    "MAX_PEERS",
    "MAX_TEXT",
    "PROTOCOL_VERSION",
    "TERMINAL_STATUSES",
    "VALUE_DEPTH",
    "WELL_KNOWN_TEST_KEYS",
    "ActorKind",
    "ActorMessage",
    "AgentView",
    "AgentsReply",
    "Arguments",
    "Assign",
    "AttemptOutcome",
    "AttemptView",
    "Bye",
    "Cancel",
    "CancelRun",
    "Changed",
    "ClientKeys",
    "Cluster",
    "ClusterMember",
    "Codec",
    "ControlError",
    "ControlReply",
    "ControlRequest",
    "Data",
    "Decide",
    "DecisionKind",
    "DiagramEdge",
    "DiagramNode",
    "Endpoint",
    "Error",
    "ErrorCode",
    "FailureKind",
    "FailureReason",
    "ForkRun",
    "GetReport",
    "GetRun",
    "Heartbeat",
    "HistoryEntry",
    "ListAgents",
    "ListMembers",
    "ListPending",
    "ListRuns",
    "ListWorkflows",
    "MembersReply",
    "Message",
    "ModelCall",
    "ModelReply",
    "Name",
    "OutputType",
    "Peers",
    "PendingDecision",
    "PendingReply",
    "ProtocolError",
    "Provenance",
    "Register",
    "Report",
    "ReportReply",
    "ResumeRun",
    "RoleView",
    "RunAccepted",
    "RunRecord",
    "RunReply",
    "RunStatus",
    "RunSummary",
    "RunsReply",
    "RuntimeMessage",
    "ServerKeys",
    "StartRun",
    "StepFailure",
    "StepFigures",
    "StepResult",
    "StepStatus",
    "StepView",
    "TakeoverSeen",
    "TaskRef",
    "Text",
    "ToolCall",
    "ToolReply",
    "ToolSpec",
    "Value",
    "WaitRun",
    "Watch",
    "Welcome",
    "WorkflowView",
    "WorkflowsReply",
    "actor_side_codec",
    "client_side_control_codec",
    "clip",
    "is_loopback",
    "is_z85_key",
    "protocol_schema",
    "runtime_side_agent_codec",
    "runtime_side_control_codec",
]
