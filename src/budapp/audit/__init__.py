"""The tamper-evident audit trail. Importing the package installs the flush hook
(`recorder`), so any process that has the audit tables in its metadata also records to them."""

from budapp.audit import recorder as recorder
