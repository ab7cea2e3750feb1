"""Jobs a data engineer or a schedule starts."""

import dagster as dg

oversight_refresh = dg.define_asset_job(
    name="oversight_refresh",
    selection=dg.AssetSelection.all(),
    description="Full oversight refresh: every asset and every check, in dependency order.",
)
