"""Competition config: frozen dataclasses with defaults in code, one TOML file per competition.

`competitions/<slug>/config.toml` holds only what differs from the defaults.
`--set section.key=value` overrides are cast to the field's type. An unknown section or
key is an error that names the file and lists the valid keys; nothing is silently ignored.

    cfg = load_config("titanic", overrides=["train.epochs=5", "model.name=gbdt"])

The package: sections.py (the dataclasses, CHOICES), checks.py (the checks a config
passes), load.py (TOML in and out, --set, profiles). `kit.config` is the stable import for
kit and for competition hooks: the names below.
"""

from kit.config.checks import (  # noqa: F401
    validate,
)
from kit.config.load import (  # noqa: F401
    FREE_SECTIONS,
    OVERRIDE_SECTIONS,
    PROFILES,
    apply_overrides,
    field_names,
    load_config,
    load_resolved,
    profile_section,
    read_toml,
    to_raw,
    to_toml,
    toml_value,
)
from kit.config.sections import (  # noqa: F401
    AUTO,
    CHOICES,
    PROBLEMS,
    CompetitionConfig,
    Config,
    CVConfig,
    DataConfig,
    FeaturesConfig,
    ImageConfig,
    ModelConfig,
    OptimConfig,
    SubmissionConfig,
    TrackConfig,
    TrainConfig,
)
