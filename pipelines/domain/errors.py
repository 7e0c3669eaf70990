"""Errors a user can act on. Each message names the thing to fix.

Every error batchpred raises on purpose is a `BatchpredError`: the CLI prints it
without a traceback and exits 1, and the DAGs fail the task without retrying unless
the error is `retryable`.
"""


class BatchpredError(Exception):
    """Base class: the CLI prints these without a traceback.

    `retryable` tells an orchestrator whether trying again can help. Most of these
    errors name something a person must fix, so retrying would only delay the alert.
    """

    retryable = False


class SpecError(BatchpredError):
    """models/<name>/model.yaml or an expectation suite is missing, malformed, or names something unsafe."""


class InputError(BatchpredError):
    """A date, alias or other argument given by a user is not acceptable."""


class IncompleteDate(InputError):
    """The warehouse does not (yet) hold the data an as-of date needs: the date is not
    over, a source's events stop before it, or its history starts too late."""


class FeatureSchemaError(BatchpredError):
    """The feature partition does not have the columns or types the model needs."""


class ContractError(BatchpredError):
    """A model version's input contract is missing, or the spec or the feature table
    disagree with it."""


class EmptyPartition(BatchpredError):
    """The feature partition for the requested date holds no rows."""


class PartitionMismatch(BatchpredError):
    """Scored plus quarantined is not the partition that was validated; nothing is published."""


class ValidationFailed(BatchpredError):
    """The Great Expectations suite failed for a partition; nothing was scored."""


class ModelNotFound(BatchpredError):
    """The registry has no model, alias or version to match the request."""


class RegistryUnavailable(BatchpredError):
    """The MLflow tracking server or registry store did not answer."""

    retryable = True


class DbtError(BatchpredError):
    """A dbt model or test failed; the message lists which and why."""


class WarehouseBusy(BatchpredError):
    """Another writer holds the warehouse (DuckDB file lock) or the partition, or the
    server did not answer in time."""

    retryable = True


class NoWarehouse(BatchpredError):
    """The embedded warehouse file does not exist yet: there is no raw data to work on."""


class UndeliveredAlerts(BatchpredError):
    """Some alerts did not reach the webhook after every alert was tried; they stay pending
    in monitoring.alert_deliveries and the next run retries them."""

    retryable = True


class DryRun(BatchpredError):
    """Raised by a writing task of a dry run: the DAG marks the task skipped, not failed."""
