"""What a plan is made of: the hardware's speeds, the cluster, and the work (which checkpoints, which queries).

A plan plays a search's schedule through a simulation (`raygems.plan.simulate`); these dataclasses hold its
parameters. Every speed is either measured (`raygems.plan.calibrate` reads them from a finished run's events
log) or given; the defaults are the H100 numbers in ../shared/FIELD-NOTES.md for a 7B model with plain
transformers `generate` (decode step 55-78 ms at any batch size, load 7.5 s for 15.2 GB).

The time of one actor call (a chunk of queries on one slot), as the simulation charges it:

    call_overhead_s                                  Ray round trip, store write
  + load: load_fixed_s + bytes / load_bandwidth      when the slot takes a checkpoint it does not hold
          + first_load_extra_s                       its first load (backend imports, CUDA context)
  + decode: for each generate batch of the call's    queries x variants sequences, cut into batch_size
            steps x (step_s + step_per_sequence_s x sequences in the batch)
            (steps: the most decode steps any task of the call takes, `Work.steps`)
  + score_per_query_s x queries

A slot is ready `slot_start_s` after it is created (a model actor process starting); its first call waits
`warm_up_s` more (the backend's imports, which overlap the first downloads). A fetch costs
`fetch_latency_s` (metadata, one request per file) and its bytes over the node's download link, which every
fetch on the node shares (`download_bandwidth`). The driver handles one event at a time (`driver_event_s`)
and spends `round_overhead_s` between rounds (ask, tell, counting).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from raygems.backends.transformers_backend import TransformersSettings
from raygems.errors import UsageError
from raygems.runtime.config import DEFAULT_METHOD, SearchConfig
from raygems.tasks.prompting import PROMPT_VARIANTS

#: Bytes of a 7B checkpoint in bf16 (the paper's 400 7B checkpoints are ~6 TB).
SEVEN_B_BYTES = 15_200_000_000


@dataclass(frozen=True)
class Speeds:
    """How fast each step of a search goes (see the module docstring for how a call's time is built)."""

    download_bandwidth: float = 125e6      # bytes/s per node (1 Gbit/s); shared by a node's fetches
    fetch_latency_s: float = 1.0           # per checkpoint fetched, besides its bytes
    load_bandwidth: float = 2.03e9         # bytes/s from local disk to the device (7B: 7.5 s)
    load_fixed_s: float = 0.0              # per load, whatever its size
    first_load_extra_s: float = 15.0       # a slot's first load
    slot_start_s: float = 10.0             # a model actor from creation to ready
    warm_up_s: float = 0.0                 # then its backend's imports, before its first call
    call_overhead_s: float = 0.05          # per actor call
    step_s: float = 0.065                  # one decode step of a generate batch
    step_per_sequence_s: float = 0.0       # and per sequence in the batch (GPU: ~0; CPU: most of it)
    score_per_query_s: float = 0.001
    driver_event_s: float = 0.002          # driver time per event it handles
    round_overhead_s: float = 0.05         # driver time between rounds
    batch_size: int = TransformersSettings.batch_size    # sequences per generate batch (the backend's)
    variants: int = len(PROMPT_VARIANTS)   # sequences per query (prompt variants generated)

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise UsageError(f"speed {item.name}={value!r}: must be a finite number >= 0")
        for name in ("download_bandwidth", "load_bandwidth"):
            if getattr(self, name) <= 0:
                raise UsageError(f"{name} must be > 0 bytes/s, got {getattr(self, name)}")
        if self.batch_size < 1 or self.variants < 1:
            raise UsageError(f"batch_size and variants must be at least 1, got {self.batch_size}, {self.variants}")

    def load_seconds(self, size_bytes: int, first: bool) -> float:
        return self.load_fixed_s + size_bytes / self.load_bandwidth + (self.first_load_extra_s if first else 0.0)

    def decode_seconds(self, queries: int, steps: int) -> float:
        """Generate `queries` queries (x variants sequences) whose longest task decodes `steps` steps."""
        sequences = queries * self.variants
        full, rest = divmod(sequences, self.batch_size)
        per_batch = self.step_s + self.step_per_sequence_s * self.batch_size
        seconds = full * steps * per_batch
        if rest:
            seconds += steps * (self.step_s + self.step_per_sequence_s * rest)
        return seconds

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Cluster:
    """Where the search runs. `max_loaded` slots (the search's --max-loaded), spread evenly over `nodes`;
    GPU-hours count every GPU of every node for the whole wall time (what a rented cluster bills). The slot
    and fetch settings default to the search's (SearchConfig)."""

    nodes: int = 1
    gpus_per_node: float = 1.0
    max_loaded: int = SearchConfig.max_loaded
    fetch_concurrency: int = SearchConfig.fetch_concurrency
    fetch_ahead: bool = SearchConfig.fetch_ahead
    cache_limit_bytes: int | None = None     # per node (None: no limit)

    def __post_init__(self) -> None:
        if self.nodes < 1 or self.max_loaded < 1 or self.fetch_concurrency < 1:
            raise UsageError(f"nodes, max_loaded and fetch_concurrency must be at least 1, got {self.nodes}, "
                             f"{self.max_loaded}, {self.fetch_concurrency}")
        if not math.isfinite(self.gpus_per_node) or self.gpus_per_node < 0:
            raise UsageError(f"gpus_per_node must be a finite number >= 0, got {self.gpus_per_node}")
        if self.cache_limit_bytes is not None and self.cache_limit_bytes <= 0:
            raise UsageError(f"cache limit must be positive, got {self.cache_limit_bytes}")

    @property
    def gpus(self) -> float:
        return self.nodes * self.gpus_per_node


@dataclass
class Work:
    """What a search evaluates: its candidates (their checkpoint sizes, and the base an adapter loads on),
    the query pool's shape (each query's task, the decode steps of each task), the answers (`rewards`), and
    the method. `sizes` all 0 with `fetch=False`: checkpoints already on every node (a local tree)."""

    model_ids: list[str]
    sizes: np.ndarray                          # bytes per candidate
    query_tasks: np.ndarray                    # task index per query of the pool
    task_names: list[str]
    steps: np.ndarray                          # decode steps per task (a generate batch's longest answer)
    rewards: "object"                          # raygems.plan.rewards.MatrixRewards
    method: str = DEFAULT_METHOD
    budget: int = 50
    seed: int = 0
    method_options: dict = field(default_factory=dict)
    chunk_size: int = 32
    final_evaluation: bool = True
    exhaustive: bool = False
    popular_base: int = 0
    downloads: list[int] | None = None         # per candidate (methods that take the models table: best-base)
    is_base: list[bool] | None = None          # per candidate: an official release of the root
    fetch: bool = False                        # checkpoints come from the hub through the fetch stage
    adapter_base: dict[int, str] = field(default_factory=dict)    # arm -> id of the base fetched beside it
    base_sizes: dict[str, int] = field(default_factory=dict)      # sizes of those bases
    failures: dict[int, str] = field(default_factory=dict)        # arm -> stage it fails at (fetch, load, ...)
    recorded_failures: frozenset[int] = frozenset()               # of those, failed in the run's store already:
                                                                  # failed when next asked, without a call
    arm_priority: list[float] | None = None    # a prior's first-round tie-break (methods that take one)
    beliefs: dict = field(default_factory=dict)                   # a prior's starting beliefs (the search's method)
    drawn: bool = False                        # answers drawn for accuracies (not a recorded matrix)
    recorded: np.ndarray | None = None         # (arms, queries) bool: pairs already in the run's store (paid)
    recorded_answers: np.ndarray | None = None  # (arms, queries) 0/1: their answers, as the search counts them

    @property
    def num_arms(self) -> int:
        return len(self.model_ids)

    @property
    def num_queries(self) -> int:
        return int(self.query_tasks.size)
