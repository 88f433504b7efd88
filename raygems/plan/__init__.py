"""What a search will cost before it starts (`raygems plan`, `raygems search --dry-run`): the live search's
schedule played through a discrete-event simulation (`simulate`), with speeds given or measured from a finished
run (`calibrate`). See docs/cost.md."""
from raygems.plan.model import Cluster, Speeds, Work
from raygems.plan.simulate import EXHAUSTIVE, PlanResult, Simulation, simulate

__all__ = ["EXHAUSTIVE", "Cluster", "PlanResult", "Simulation", "Speeds", "Work", "simulate"]
