"""Editor proxies for the CLI: what `rayflow proxies` needs, in one place of the handoff layer
(the front ends talk to handoff/, engine/ and catalog/, never to stages/ or media/ directly).

The work is done by :mod:`rayflow.stages.editor_proxy` (ffmpeg through ``media/``); this module
only gathers its public pieces with file discovery and the tool errors a caller must handle.
"""

from __future__ import annotations

from rayflow.config import EDITOR_CODECS
from rayflow.media.encoders import is_editor_codec
from rayflow.media.tools import ToolError, ToolMissing
from rayflow.stages.discover import discover
from rayflow.stages.editor_proxy import PROXY_FOLDER, EditorProxyStage, make_editor_proxy

__all__ = ["EDITOR_CODECS", "PROXY_FOLDER", "EditorProxyStage", "ToolError", "ToolMissing", "discover",
           "is_editor_codec", "make_editor_proxy"]
