"""An isolated tool returning rich content (issue 14): its result crosses the worker pipe as JSON."""

from agent_runtime import Image, tool


@tool(name="rich.iso_image", isolated=True)
def iso_image() -> Image:
    """A tiny PNG, from a worker process."""
    return Image(b"\x89PNG-iso", "image/png")
