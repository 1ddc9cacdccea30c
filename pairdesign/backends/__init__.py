"""Adapters to external solvers, one file each, in the manner of cvxpy's solver interfaces.

Each adapter says whether its library is there (``available()``), imports it lazily, hands it the
run's deadline (or refuses a time limit it cannot honour, up front), and maps the solver's own
statuses through one table (``STATUS_MAP``) to a :class:`Outcome` name: ``optimal``,
``inaccurate`` (a point the solver itself calls inaccurate), ``time_limit``, ``iteration_limit``,
``infeasible``, ``interrupted`` or ``error``. A broken solver raises
:class:`~pairdesign.errors.SolverError`; an infeasible problem is a status, not an exception.

- :mod:`.highs`: HiGHS through highspy (the MILP master, the Newton QP, the LP oracle);
- :mod:`.cvxpy_conic`: cvxpy's conic solvers (the relaxation's reference formulation);
- :mod:`.cvxpy_mip`: cvxpy's mixed-integer conic solvers (the MISOCP);
- :mod:`.pyomo`: any MILP solver Pyomo knows (the outer-approximation master).
"""

OPTIMAL = "optimal"
INACCURATE = "inaccurate"
TIME_LIMIT = "time_limit"
ITERATION_LIMIT = "iteration_limit"
INFEASIBLE = "infeasible"
INTERRUPTED = "interrupted"
ERROR = "error"
