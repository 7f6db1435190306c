"""The query processor, the call-level seam, routing strategies and the echo engine."""

from helium_lab.processor.calls import CallRecord, CallResult, LLMCall, synthetic_output
from helium_lab.processor.config import ProcessorConfig
from helium_lab.processor.echo_engine import EchoEngine, run_echo
from helium_lab.processor.query_processor import QueryProcessor

__all__ = ["CallRecord", "CallResult", "EchoEngine", "LLMCall", "ProcessorConfig",
           "QueryProcessor", "run_echo", "synthetic_output"]
