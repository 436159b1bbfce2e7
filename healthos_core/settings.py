"""Settings for HealthOS, read once from the environment (prefix ``HEALTHOS_``)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Role = Literal[
    "clinician",
    "nurse",
    "finance",
    "operations",
    "leadership",
    "data_scientist",
    "admin",
    "patient",
]

#: Development tokens; refused when ``environment`` is ``production``.
DEV_TOKENS: dict[str, str] = {
    "dev-clinician": "clinician",
    "dev-nurse": "nurse",
    "dev-finance": "finance",
    "dev-operations": "operations",
    "dev-leadership": "leadership",
    "dev-admin": "admin",
}


class Settings(BaseSettings):
    """HealthOS runtime settings.

    Every field can be set by an environment variable named ``HEALTHOS_<FIELD>``
    (for example ``HEALTHOS_DATABASE_URL``) or in a ``.env`` file in the working
    directory.

    Attributes
    ----------
    environment : {"development", "test", "production"}, default="development"
        Deployment environment; development tokens are refused in production.
    var_dir : Path, default=Path("var")
        Folder for the embedded SQLite database and the local MLflow store.
    database_url : str or None, default=None
        SQLAlchemy URL. ``None`` means the embedded SQLite file ``<var_dir>/healthos.db``.
    api_tokens : dict of str to SecretStr-free role name
        Bearer token → role. Default: the development tokens in :data:`DEV_TOKENS`.
    market : {"US", "IN", "UK"}, default="US"
        Billing market (charges, tax, claims rules).
    currency : str, default="USD"
        ISO 4217 currency the ledger keeps all money in, **when set explicitly**
        (``HEALTHOS_CURRENCY``); unset, the market's currency is used (IN → INR, UK → GBP).
        Read it through :func:`healthos_core.billing.money.ledger_currency`, never here.
    host, port : str, int
        Where ``healthos serve`` listens; default 127.0.0.1:8000.
    models_dir : Path or None, default=None
        Where the ONNX champions (``<name>/model.onnx`` + ``manifest.json``) are read by
        scoring and serving, and written by ``healthos train`` on promotion. ``None``
        means the models shipped in ``reasoning/artifacts``.
    mlflow_tracking_uri : str or None, default=None
        MLflow tracking and registry URI. ``None`` means the embedded local store
        ``sqlite:///<var_dir>/mlflow.db`` with artifacts in ``<var_dir>/mlartifacts``.
    leakage_billing_start : date, default=2011-01-01
        Encounters and events before this UTC day are history, not billed (the shared
        ``synthea-rcm`` data's scope).
    leakage_unbilled_days : int, default=5
        Bill hold: days after discharge before an insured encounter without a claim is
        leakage (DNFB "typically 3–5 days", HFMA as cited in
        :class:`reasoning.finance.leakage.LeakageThresholds`).
    leakage_late_charge_days : int, default=5
        Charge lag above which a charge is late (MGMA 3–5 days for high performers).
    leakage_denial_followup_days : int, default=30
        Days after a denial by which it must be corrected, appealed or written off (the
        shortest common payer appeal window; Medicare allows 120, 42 CFR 405.942).
    leakage_underpayment_tolerance : Decimal, default=0.01
        Rounding allowed per accepted claim line before a shortfall is an underpayment.
    max_body_bytes : int, default=1048576 (1 MiB)
        Largest request body the API reads; a larger one is refused with 413 before it
        is read (the JSON bodies of the API are a few kilobytes).
    max_remittance_body_bytes : int, default=52428800 (50 MiB)
        The same limit for ``POST /api/v1/remittances``, whose payer files (Bundles or
        NDJSON of ClaimResponses) are larger; send bigger batches in several requests.
    max_fhir_bundle_bytes : int, default=52428800 (50 MiB)
        The same limit for ``POST /fhir`` (transaction and batch Bundles: a Synthea
        patient's record is up to about 4 MB).
    max_json_depth : int, default=64
        Deepest nesting of arrays and objects a JSON body may have (FHIR resources nest
        about ten levels); a deeper body is refused with 422 before it is parsed.
    bulk_export_government_identifiers : bool, default=False
        Whether a Bulk Data ``$export`` (admin only) carries government identifiers (SSN,
        driver's licence, passport numbers). Off: they stay out, as for every other read
        (``docs/access.md``). Turn it on only on the server a whole record is moved *from*
        (to a new HealthOS server or a backup), where the copy must match patients on every
        identifier and reproduce every table.
    sync_token : SecretStr, optional
        Bearer token ``healthos sync`` sends to the source FHIR server
        (``HEALTHOS_SYNC_TOKEN``; never a command-line argument).
    rescore : {"inline", "worker", "off"}, default="inline"
        Who consumes the outbox of live events (``docs/rescoring.md``): ``inline``, a
        thread of each API process (the embedded default; several API workers on
        PostgreSQL share the work safely); ``worker``, separate ``healthos worker``
        processes (the API starts none); ``off``, nobody (events wait in the outbox).
    kpi_targets : dict of str to float, default={}
        Targets of the KPIs by key (``HEALTHOS_KPI_TARGETS='{"alos": 4.5}'``), over the
        defaults documented in ``docs/kpis.md``.
    rescore_poll_seconds : float, default=0.1
        Seconds between a consumer's looks at an empty outbox.
    rescore_batch : int, default=100
        Most events a consumer claims at once.
    rescore_lease_seconds : float, default=30
        How long a claim holds: a consumer that dies leaves its events to others after it.
    chromium_path : Path, default=Path("/usr/bin/chromium")
        The Chromium that ``healthos briefing --out FILE.pdf`` prints with, through
        Playwright (Debian's ``chromium`` package; ``docs/briefing.md``).
    """

    model_config = SettingsConfigDict(
        env_prefix="HEALTHOS_", env_file=".env", env_ignore_empty=True, extra="ignore"
    )

    environment: Literal["development", "test", "production"] = "development"
    var_dir: Path = Path("var")
    database_url: str | None = None
    api_tokens: dict[str, Role] = Field(default_factory=lambda: dict(DEV_TOKENS))  # type: ignore[arg-type]
    secret_key: SecretStr = SecretStr("development-only-secret")
    market: Literal["US", "IN", "UK"] = "US"
    currency: str = "USD"
    host: str = "127.0.0.1"
    port: int = 8000
    models_dir: Path | None = None
    mlflow_tracking_uri: str | None = None
    leakage_billing_start: dt.date = dt.date(2011, 1, 1)
    leakage_unbilled_days: int = Field(default=5, ge=0)
    leakage_late_charge_days: int = Field(default=5, ge=0)
    leakage_denial_followup_days: int = Field(default=30, ge=0)
    leakage_underpayment_tolerance: Decimal = Field(default=Decimal("0.01"), ge=0)
    max_body_bytes: int = Field(default=1024 * 1024, ge=0)
    max_remittance_body_bytes: int = Field(default=50 * 1024 * 1024, ge=0)
    max_fhir_bundle_bytes: int = Field(default=50 * 1024 * 1024, ge=0)
    max_json_depth: int = Field(default=64, ge=1)
    bulk_export_government_identifiers: bool = False
    sync_token: SecretStr | None = None
    rescore: Literal["inline", "worker", "off"] = "inline"
    rescore_poll_seconds: float = Field(default=0.1, gt=0)
    rescore_batch: int = Field(default=100, ge=1)
    rescore_lease_seconds: float = Field(default=30.0, gt=0)
    kpi_targets: dict[str, float] = Field(default_factory=dict)
    chromium_path: Path = Path("/usr/bin/chromium")

    @field_validator("api_tokens")
    @classmethod
    def _tokens_not_empty(cls, value: dict[str, Role]) -> dict[str, Role]:
        for token in value:
            if len(token) < 8:
                raise ValueError("each API token must be at least 8 characters long")
        return value

    def model_post_init(self, __context: object) -> None:
        """Refuse development secrets and tokens in production."""
        if self.environment == "production":
            if self.secret_key.get_secret_value() == "development-only-secret":
                raise ValueError("HEALTHOS_SECRET_KEY must be set in production")
            if set(self.api_tokens) & set(DEV_TOKENS):
                raise ValueError("development API tokens are not allowed in production")

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to the embedded SQLite file under ``var_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'healthos.db').as_posix()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read once from the environment.

    Returns
    -------
    Settings
        Cached settings; call ``get_settings.cache_clear()`` in tests after changing the
        environment.
    """
    return Settings()
