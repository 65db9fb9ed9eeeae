"""Tables as pandas DataFrames for notebooks; pandas is optional, its absence one clear error."""

from __future__ import annotations

from typing import Any

from fusionbench.api.errors import ConfigError


def data_frame(rows: list[dict[str, Any]], what: str) -> Any:
    """``pandas.DataFrame(rows)``; a ConfigError naming ``what`` asked for it when pandas is not installed."""
    try:
        import pandas as pd
    except ImportError:
        raise ConfigError(f"{what} needs pandas, which is not installed: pip install pandas") from None
    return pd.DataFrame(rows)
