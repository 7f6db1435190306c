"""What engine processes buy: one workload on two workers, in-process engines (stepped one
after another) against one child process per engine (steps overlap), interleaved runs,
medians and their ratio. Real vLLM (the CPU build and the tiny model unless given).

    python -m experiments.engine_processes_bench [--workflow mapred_mmlu] [--batch 16]
        [--repeats 3] [--system helium]

Prints each run's makespan and engine busy time, then the medians; nothing is written.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from experiments.compose import system_settings
from helium_lab.config import EngineSettings, ModelSettings, Orchestration, PlannerSettings
from helium_lab.pipeline import plan_batch
from helium_lab.processor import QueryProcessor
from helium_lab.workflows import make_workload

PARAMS: dict[str, dict[str, Any]] = {"mapred_mmlu": {"experts": 3, "roles": 3},
                                     "debate": {"agents": 3, "rounds": 2}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workflow", default="mapred_mmlu", choices=sorted(PARAMS))
    ap.add_argument("--system", default="helium")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-output-tokens", type=int, default=64)
    args = ap.parse_args(argv)
    import runtime

    system = system_settings(args.system)[0]
    sessions = {}
    for mode in (False, True):
        engine = EngineSettings(block_size=32, kv_capacity_tokens=32_768, max_model_len=4096,
                                engine_processes=mode)
        sessions[mode] = runtime.open_session(ModelSettings("tiny"), engine, 2,
                                              orchestration=Orchestration(), seed=0,
                                              max_output_tokens=args.max_output_tokens)
    times: dict[bool, list[float]] = {False: [], True: []}
    try:
        for rep in range(args.repeats):
            for mode, session in sessions.items():
                bound = make_workload(args.workflow, batch_size=args.batch, seed=rep,
                                      **PARAMS[args.workflow])
                planned = plan_batch(bound, system, PlannerSettings(), 2, session.tokenizer,
                                     namespace=f"bench-{rep}", seed=0)
                proc = QueryProcessor(planned.plan, planned.schedule, session.tokenizer,
                                      system.processor("tiny"))
                res = session.run(proc)
                busy = sum(s.dt for ts in res.timeseries.values() for s in ts)
                times[mode].append(res.makespan)
                print(f"repeat {rep} {'processes ' if mode else 'in-process'}: makespan "
                      f"{res.makespan:7.2f} s, engines busy {busy:7.2f} s, "
                      f"{len(res.records)} calls", flush=True)
    finally:
        for session in sessions.values():
            session.close()
    local, remote = (statistics.median(times[m]) for m in (False, True))
    print(f"median makespan: in-process {local:.2f} s, engine processes {remote:.2f} s, "
          f"ratio {local / remote:.2f}x")


if __name__ == "__main__":
    main()
