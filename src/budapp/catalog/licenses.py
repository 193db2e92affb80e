"""Common model licenses and whether they allow commercial use. Identifiers are the Hugging
Face `license:` values (SPDX where one exists). A license not in the table is `unknown`, which
is flagged too: nobody should assume an unread license permits anything."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CommercialUse = Literal["allowed", "conditional", "prohibited", "unknown"]


@dataclass(frozen=True, slots=True)
class LicenseTerms:
    name: str
    commercial_use: CommercialUse
    note: str = ""

    @property
    def restricts_commercial_use(self) -> bool:
        return self.commercial_use != "allowed"


_LLAMA = "commercial use allowed below 700M monthly active users, with an acceptable-use policy"

LICENSES: dict[str, LicenseTerms] = {
    "apache-2.0": LicenseTerms("Apache License 2.0", "allowed"),
    "mit": LicenseTerms("MIT License", "allowed"),
    "bsd-2-clause": LicenseTerms("BSD 2-Clause", "allowed"),
    "bsd-3-clause": LicenseTerms("BSD 3-Clause", "allowed"),
    "cc0-1.0": LicenseTerms("CC0 1.0", "allowed"),
    "cc-by-4.0": LicenseTerms("CC BY 4.0", "allowed"),
    "cc-by-sa-4.0": LicenseTerms("CC BY-SA 4.0", "allowed"),
    "openrail": LicenseTerms("OpenRAIL", "conditional", "use-based restrictions"),
    "openrail++": LicenseTerms("OpenRAIL++", "conditional", "use-based restrictions"),
    "bigscience-openrail-m": LicenseTerms(
        "BigScience OpenRAIL-M", "conditional", "use-based restrictions"
    ),
    "creativeml-openrail-m": LicenseTerms(
        "CreativeML OpenRAIL-M", "conditional", "use-based restrictions"
    ),
    "llama2": LicenseTerms("Llama 2 Community License", "conditional", _LLAMA),
    "llama3": LicenseTerms("Llama 3 Community License", "conditional", _LLAMA),
    "llama3.1": LicenseTerms("Llama 3.1 Community License", "conditional", _LLAMA),
    "llama3.2": LicenseTerms("Llama 3.2 Community License", "conditional", _LLAMA),
    "llama3.3": LicenseTerms("Llama 3.3 Community License", "conditional", _LLAMA),
    "gemma": LicenseTerms("Gemma Terms of Use", "conditional", "prohibited-use policy"),
    "deepseek": LicenseTerms("DeepSeek License", "conditional", "use-based restrictions"),
    "qwen": LicenseTerms("Qwen License", "conditional", "above 100M MAU needs a license"),
    "qwen-research": LicenseTerms("Qwen Research License", "prohibited", "research only"),
    "mrl": LicenseTerms("Mistral Research License", "prohibited", "research only"),
    "cc-by-nc-4.0": LicenseTerms("CC BY-NC 4.0", "prohibited", "non-commercial"),
    "cc-by-nc-sa-4.0": LicenseTerms("CC BY-NC-SA 4.0", "prohibited", "non-commercial"),
    "cc-by-nc-nd-4.0": LicenseTerms("CC BY-NC-ND 4.0", "prohibited", "non-commercial"),
    "gpl-3.0": LicenseTerms("GNU GPL v3", "conditional", "copyleft"),
    "agpl-3.0": LicenseTerms("GNU AGPL v3", "conditional", "network copyleft"),
}

UNKNOWN = LicenseTerms("unknown", "unknown", "not in budapp's license table")


def terms_of(license_id: str | None) -> LicenseTerms | None:
    if not license_id:
        return None
    return LICENSES.get(license_id.strip().lower(), UNKNOWN)
