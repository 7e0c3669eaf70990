"""Errors a user can act on. Each message names the thing to fix."""


class BatchpredError(Exception):
    """Base class: the CLI prints these without a traceback.

    `retryable` tells an orchestrator whether trying again can help. Most of these
    errors name something a person must fix, so retrying would only delay the alert.
    """

    retryable = False


class SpecError(BatchpredError):
    """models/<name>/model.yaml is missing, malformed, or names something unsafe."""


class InputError(BatchpredError):
    """A date, alias or other argument given by a user is not acceptable."""


class FeatureSchemaError(BatchpredError):
    """The feature partition does not have the columns or types the model needs."""


class EmptyPartition(BatchpredError):
    """The feature partition for the requested date holds no rows."""


class ValidationFailed(BatchpredError):
    """The Great Expectations suite failed for a partition; nothing was scored."""


class ModelNotFound(BatchpredError):
    """The registry has no model, alias or version to match the request."""


class WarehouseBusy(BatchpredError):
    """Another writer holds the warehouse (DuckDB file lock) or the partition."""

    retryable = True
