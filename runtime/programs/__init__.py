"""The baselines' own client programs, run for real against vLLM API servers.

- `base.py`: `ClientProgram`, what every program shares (sending one planned call,
  recording it, feeding the processor);
- `langgraph_program.py`: LangGraph's program (helium_demo `bench_programs/*/langgraph.py`)
  compiled from a workflow;
- `openai_programs.py`: QueryWise's (`querywise.py`, one query at a time) and OpWise's
  (`utils/opwise.py`, a stage per op) AsyncOpenAI programs;
- `broker.py`: `CallBroker`, the planner's rendered calls handed to the program's nodes;
- `balancer.py`: `ShortestQueueTransport`, the reference's shortest-queue balancer in the
  HTTP client.

`runtime.server_session.ServerSession` starts the servers and runs a program (config key
`system.program`: `langgraph`, `querywise` for the vLLM baseline, `opwise`). Needs the
`programs` extra (LangGraph 1.0.10, langchain-core 1.2.17, langchain-openai 1.1.9, as the
reference pinned them).
"""
