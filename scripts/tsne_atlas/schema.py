"""The config schema (schemas/config.schema.yaml), read when the workflow loads.

Only the Snakefile and tools use this module: it needs PyYAML and jsonschema, which the jobs'
environments do not.
"""

import os
from pathlib import Path


def schema_error_line(config: dict, schema_path: str | os.PathLike) -> str:
    """The schema's first complaint about ``config`` as one line naming the key, or '' if none."""
    import jsonschema
    import yaml

    schema = yaml.safe_load(Path(schema_path).read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is None:
        return ""
    key = ".".join(str(part) for part in error.absolute_path) or "(top level)"
    return f"{key}: {error.message}; see docs/configuration.md"
