"""helium_lab: the planner shared by the simulator (`sim/`) and the vLLM runtime (`runtime/`).

Pure Python: importing it never imports simpy, vllm or torch.
"""

__version__ = "0.1.0"
