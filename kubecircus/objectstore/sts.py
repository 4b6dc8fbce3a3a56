"""Short-lived, narrowly scoped credentials for one step of one job (STS AssumeRole).

The operator signs an AssumeRole request with its own store user's keys and an inline session
policy (``policy.py``); the store returns temporary keys whose rights are the intersection of
the two, valid for ``duration`` seconds. Nothing MinIO-specific: any store with STS AssumeRole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from minio.credentials import AssumeRoleProvider

from kubecircus.timestamps import stamp

from .client import Credentials, StoreConfig

#: STS refuses durations below 15 minutes.
MIN_DURATION = 900
MAX_DURATION = 12 * 3600


@dataclass(frozen=True)
class Minted:
    access_key: str
    secret_key: str
    session_token: str
    expiration: datetime | None

    def secret_data(self) -> dict[str, str]:
        """The Secret's stringData: the files a step reads (``Credentials.from_dir``)."""
        data = {
            "accessKey": self.access_key,
            "secretKey": self.secret_key,
            "sessionToken": self.session_token,
        }
        if self.expiration:
            data["expiration"] = stamp(self.expiration)
        return data


def mint(config: StoreConfig, operator: Credentials, policy: str, duration: int, session: str) -> Minted:
    provider = AssumeRoleProvider(
        sts_endpoint=config.url,
        access_key=operator.access_key,
        secret_key=operator.secret_key,
        duration_seconds=max(MIN_DURATION, min(duration, MAX_DURATION)),
        policy=policy,
        region=config.region,
        role_session_name=session[:64],
        http_client=config.http(timeout=15, pool=2),
    )
    creds = provider.retrieve()
    return Minted(creds.access_key, creds.secret_key, creds.session_token or "", creds.expiration)
