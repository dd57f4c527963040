"""The portfolio's members: a fixed, ordered list of model kinds and settings, cheap first.

The list follows what wins most often on tables (issue 31 and the practice notes it cites):
the three boosters at the kit's defaults, AutoGluon's two extra LightGBM settings (GBMXT and GBMLarge,
autogluon.tabular 1.6 `hyperparameter_configs.py` "default"), the two forests, a linear
model and the two networks for diversity (TabArena: "RealMLP and TabM have marginally
overtaken boosted trees with weighted ensembling"). The order is by the cost of one fold,
measured on the Titanic demo table (2-core machine, one thread) and by how each kind grows
with rows: linear, lgbm and xgb about 2 s a fold there, catboost 2 s, the forests 3.5-4 s,
the networks 5 s.

    members = choose("lgbm,xgb")         # or choose(None): the whole portfolio
    member.overrides()                   # ["model.name=lgbm", "model.params.lgbm.x=..."]
"""

from __future__ import annotations

from dataclasses import dataclass

from kit.errors import ConfigError

# The default budget: one hour. It fits a Kaggle kernel's CPU session (12 hours a session;
# code competitions commonly cap a notebook at 9) with room for the kernel's other work,
# and AMLB found little gain from 1 h to 4 h (tabular-practice.md, section 5). Members stop
# being started when their estimate does not fit, so a small table ends far sooner.
DEFAULT_BUDGET = 3600.0
# Below this no member can finish: the portfolio's own imports (torch, pandas, the kit: about
# 3.3 s on a 2-core machine) and the blends' reserve (loop.BLEND_RESERVE) come first.
MIN_BUDGET = 10.0
# train.py --refit for every member (kit/pipeline/refit.py): off, only, with_folds
REFIT_MODES = ("off", "only", "with_folds")
# data.out_of_core: kit/out_of_core trains only these kinds (docs/architecture.md)
OUT_OF_CORE_KINDS = ("mlp", "tabm", "xgb", "lgbm")


@dataclass(frozen=True)
class Member:
    """One portfolio entry: a model kind (`model.name`) and its settings over the
    competition's own `[model.params.<kind>]`."""

    name: str
    kind: str
    settings: tuple[tuple[str, object], ...] = ()
    seeded: bool = True  # False: train.seed changes nothing, so no extra seeds

    def overrides(self) -> list[str]:
        """The `--set` values that make a train.py run this member."""
        return [f"model.name={self.kind}"] + [
            f"model.params.{self.kind}.{key}={_toml(value)}" for key, value in self.settings]


def _toml(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


PORTFOLIO = (
    Member("linear", "linear", seeded=False),  # lbfgs logistic / ridge: deterministic
    Member("lgbm", "lgbm"),
    Member("xgb", "xgb"),
    Member("lgbm_xt", "lgbm", (("extra_trees", True),)),  # AutoGluon's LightGBMXT
    Member("catboost", "catboost"),
    Member("extratrees", "extratrees"),
    Member("rf", "rf"),
    Member("lgbm_large", "lgbm", (("learning_rate", 0.03), ("num_leaves", 128),
                                  ("feature_fraction", 0.9), ("min_data_in_leaf", 3))),
    Member("mlp", "mlp"),
    Member("tabm", "tabm"),
)
NAMES = tuple(m.name for m in PORTFOLIO)


def choose(names: str | None) -> tuple[Member, ...]:
    """The members named in `names` ("lgbm,xgb", in the portfolio's order), or all."""
    if not names:
        return PORTFOLIO
    asked = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in asked if n not in NAMES]
    if unknown or not asked:
        raise ConfigError(f"--members {names!r}: unknown member {', '.join(unknown) or '(none)'};"
                          f" valid: {', '.join(NAMES)} (comma-separated, e.g. lgbm,xgb)")
    return tuple(m for m in PORTFOLIO if m.name in asked)


def not_applicable(member: Member, cfg) -> str:
    """Why `member` cannot train on this competition (its config), or ""."""
    if cfg.competition.task != "tabular":
        return (f"competition.task = {cfg.competition.task!r}: the portfolio's members are "
                "tabular kinds")
    if cfg.data.out_of_core == "on" and member.kind not in OUT_OF_CORE_KINDS:
        return (f"data.out_of_core = \"on\" trains only {', '.join(OUT_OF_CORE_KINDS)} "
                "(kit/out_of_core)")
    return ""
