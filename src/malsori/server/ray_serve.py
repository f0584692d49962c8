"""``malsori serve --ray``: the same application (``create_app``) deployed on Ray Serve.

Each replica is one Ray actor that builds the app from the settings at start (its lifespan loads
the default model and starts the workers, as ``malsori serve`` does); Ray Serve's HTTP proxy on
``settings.host:settings.port`` spreads requests and WebSockets over the replicas, adds and removes
replicas to keep about ``ray.target_ongoing_requests`` in each, and reserves one GPU per replica
when the cluster has GPUs. Inside a replica, requests are batched by the engine as always.

Needs the ``ray`` extra (``ray[serve]``); nothing of Ray is imported until a deployment is built.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from ..errors import require_extra
from .settings import ServerSettings

logger = logging.getLogger(__name__)

APP_NAME = "malsori"
RAY_MODULES = ("ray", "ray.serve", "aiohttp", "aiohttp_cors", "opencensus")


def require_ray_extra() -> None:
    require_extra("ray", RAY_MODULES, "`malsori serve --ray`")


@dataclass(frozen=True)
class RayPlan:
    """What the deployment asks Ray Serve for, derived once from the settings."""

    replicas: dict[str, Any]  # num_replicas, or autoscaling_config
    actor_options: dict[str, Any]
    max_ongoing_requests: int

    def deployment_options(self) -> dict[str, Any]:
        return {
            "name": APP_NAME,
            "ray_actor_options": self.actor_options,
            "max_ongoing_requests": self.max_ongoing_requests,
            **self.replicas,
        }


def plan(settings: ServerSettings, cluster_gpus: float) -> RayPlan:
    """Replicas (fixed when min equals max, else autoscaling on ongoing requests) and what each
    reserves: ``ray.gpus_per_replica``, or one GPU when the cluster has any."""
    r = settings.ray
    if r.min_replicas > r.max_replicas:
        from ..errors import InvalidOptionError

        raise InvalidOptionError(
            f"ray.min_replicas ({r.min_replicas}) is above ray.max_replicas ({r.max_replicas})"
        )
    replicas: dict[str, Any]
    if r.min_replicas == r.max_replicas:
        replicas = {"num_replicas": r.max_replicas}
    else:
        replicas = {
            "autoscaling_config": {
                "min_replicas": r.min_replicas,
                "initial_replicas": max(1, r.min_replicas),
                "max_replicas": r.max_replicas,
                "target_ongoing_requests": r.target_ongoing_requests,
                "upscale_delay_s": r.upscale_delay_s,
                "downscale_delay_s": r.downscale_delay_s,
            }
        }
    gpus = r.gpus_per_replica if r.gpus_per_replica is not None else (1 if cluster_gpus else 0)
    actor = {"num_cpus": r.cpus_per_replica, "num_gpus": gpus}
    return RayPlan(replicas, actor, r.max_ongoing_requests)


def build_application(settings: ServerSettings, ray_plan: RayPlan) -> Any:
    """The Ray Serve application: the FastAPI app of ``create_app(settings)``, built in each
    replica (settings travel pickled, never re-read from that machine's environment)."""
    from ray import serve

    def build() -> Any:
        from .app import create_app
        from .logs import configure_logging

        configure_logging(settings.log_level)
        return create_app(replica_settings(settings, serve.get_replica_context().replica_id))

    ingress: Any = serve.ingress(build)()
    deployment: Any = serve.deployment(ingress, **ray_plan.deployment_options())
    return deployment.bind()


def replica_settings(settings: ServerSettings, replica: Any) -> ServerSettings:
    """Each replica's own upload spool (a subfolder named by its Ray replica id): the spool is
    emptied at startup, and replicas share one ``data_dir`` (and may share one machine)."""
    spool = settings.spool_dir or settings.data_dir / "uploads"
    return settings.model_copy(update={"spool_dir": spool / f"replica-{replica.unique_id}"})


def connect(settings: ServerSettings) -> float:
    """Join ``ray.address`` or start a local instance; the cluster's GPUs."""
    import ray

    if not ray.is_initialized():
        if settings.ray.address is not None:
            ray.init(address=settings.ray.address)
        else:
            ray.init(
                include_dashboard=False,
                object_store_memory=settings.ray.local_object_store_mb * 1024 * 1024,
            )
    return float(ray.cluster_resources().get("GPU", 0))


def deploy(settings: ServerSettings) -> RayPlan:
    """Deploy (or update) the application; returns once every replica started."""
    from ray import serve

    ray_plan = plan(settings, connect(settings))
    serve.start(http_options={"host": settings.host, "port": settings.port})
    serve.run(build_application(settings, ray_plan), name=APP_NAME, route_prefix="/")
    logger.info(
        "deployed on Ray Serve at http://%s:%d: %s, each replica %s",
        settings.host,
        settings.port,
        ray_plan.replicas,
        ray_plan.actor_options,
    )
    return ray_plan


def shutdown(*, keep_cluster: bool) -> None:
    """Remove the application (and Serve) and leave Ray; a local instance ends with it."""
    import ray
    from ray import serve

    try:
        serve.delete(APP_NAME)
        if not keep_cluster:
            serve.shutdown()
    finally:
        ray.shutdown()


def run(settings: ServerSettings, stop: threading.Event) -> None:
    """``malsori serve --ray``: deploy, serve until ``stop`` is set, then tear down."""
    deploy(settings)
    try:
        stop.wait()
    finally:
        logger.info("stopping the Ray Serve deployment")
        shutdown(keep_cluster=settings.ray.address is not None)
