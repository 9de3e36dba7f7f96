"""The Explorer's 3D view: the seven meshes as lit surfaces, with the viewer's slice plane.

A slider move changes vertex positions only (one topology for every SSM sample), so the
surface is drawn by a small vispy visual whose buffers are rewritten in place. vispy's own
``Mesh.set_data`` rebuilds and recompiles its shader program on every call, which cost
about 25 of the 30 ms per repaint here under Xvfb's software OpenGL, on the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedsim_napari.views import STRUCTURE_COLORS

_VERTEX = """
varying vec4 v_color;
varying vec3 v_normal;
void main() {
    v_color = $color;
    v_normal = $normal;
    gl_Position = $transform(vec4($position, 1.0));
}
"""
# Two fixed lamps in the world frame, lit two-sided (the open vessel ends show their
# inside): enough to read the shape while the turntable camera turns.
_FRAGMENT = """
varying vec4 v_color;
varying vec3 v_normal;
void main() {
    vec3 n = normalize(v_normal);
    float key = abs(dot(n, normalize(vec3(0.45, -0.55, 0.70))));
    float fill = abs(dot(n, normalize(vec3(-0.60, 0.35, -0.25))));
    gl_FragColor = vec4(v_color.rgb * (0.30 + 0.60 * key + 0.25 * fill), v_color.a);
}
"""


@dataclass(frozen=True)
class SurfaceData:
    """All structures as one indexed triangle mesh, ready for the GPU (world RAS+ mm)."""

    vertices: np.ndarray  # (n, 3) float32
    faces: np.ndarray  # (m, 3) uint32
    normals: np.ndarray  # (n, 3) float32, unit, area-weighted
    colors: np.ndarray  # (n, 4) float32


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals of a triangle mesh (float32)."""
    v = np.asarray(vertices, np.float64)
    tri = v[faces]
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # length = 2 · area
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, faces[:, k], face_n)
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return (n / np.maximum(length, 1e-12)).astype(np.float32)


def mesh_payload(meshes: dict) -> SurfaceData:
    """The structures of one result as a :class:`SurfaceData`.

    Built in the render worker, so the GUI thread only copies buffers.
    """
    verts, faces, colors, offset = [], [], [], 0
    for name, (v, f) in meshes.items():
        verts.append(np.asarray(v, np.float32))
        faces.append(np.asarray(f, np.uint32) + offset)
        colors.append(np.tile(np.float32((*STRUCTURE_COLORS[name], 1.0)), (len(v), 1)))
        offset += len(v)
    vertices, faces = np.concatenate(verts), np.concatenate(faces)
    return SurfaceData(vertices, faces, vertex_normals(vertices, faces),
                       np.concatenate(colors))


def _surface_node():
    """A scene-graph node class for :class:`SurfaceData` (vispy imported lazily)."""
    from vispy import gloo
    from vispy.scene.visuals import create_visual_node
    from vispy.visuals import Visual

    class SurfaceVisual(Visual):
        def __init__(self):
            super().__init__(vcode=_VERTEX, fcode=_FRAGMENT)
            empty = np.zeros((1, 3), np.float32)
            self._buffers = {"position": gloo.VertexBuffer(empty),
                             "normal": gloo.VertexBuffer(empty),
                             "color": gloo.VertexBuffer(np.zeros((1, 4), np.float32))}
            for name, buf in self._buffers.items():
                self.shared_program.vert[name] = buf
            self._draw_mode = "triangles"
            self._faces = None
            self._colors = None
            self.data: SurfaceData | None = None
            self.set_gl_state("opaque", depth_test=True, cull_face=False)

        def set_surface(self, data: SurfaceData) -> None:
            """Rewrite the buffers; the shader program is never rebuilt."""
            self._buffers["position"].set_data(data.vertices)
            self._buffers["normal"].set_data(data.normals)
            if self._colors is None or not np.array_equal(self._colors, data.colors):
                self._buffers["color"].set_data(data.colors)
                self._colors = data.colors
            if self._faces is None or not np.array_equal(self._faces, data.faces):
                self._index_buffer = gloo.IndexBuffer(data.faces)
                self._faces = data.faces
            self.data = data
            self.update()

        def _prepare_transforms(self, view):
            view.view_program.vert["transform"] = view.get_transform()

        def _prepare_draw(self, view):
            return self.data is not None

        def _compute_bounds(self, axis, view):
            if self.data is None:
                return None
            column = self.data.vertices[:, axis]
            return float(column.min()), float(column.max())

    return create_visual_node(SurfaceVisual)


class MeshCanvas:
    """The meshes in a vispy canvas of their own, with a translucent axial slice plane.

    ``widget`` is the Qt widget to place in a dock. The plane is built once and moved by
    its transform, so following the viewer's slice costs no shader work either.
    """

    PLANE_PAD_MM = 10.0

    def __init__(self, size=(360, 300)):
        from vispy import scene

        self.canvas = scene.SceneCanvas(keys=None, size=size, bgcolor="#262930")
        self.view = self.canvas.central_widget.add_view()
        self.view.camera = scene.TurntableCamera(fov=30, elevation=15, azimuth=-60)
        self.surface = _surface_node()(parent=self.view.scene)
        self._scene = scene
        self.plane = None
        self.slice_z_mm: float | None = None

    @property
    def widget(self):
        return self.canvas.native

    @property
    def data(self) -> SurfaceData | None:
        """What the canvas shows now."""
        return self.surface.data

    def update(self, data: SurfaceData, slice_z_mm: float | None = None) -> None:
        """Show a :func:`mesh_payload`; the first one also frames the camera and plane."""
        first = self.surface.data is None
        self.surface.set_surface(data)
        if first:
            lo, hi = data.vertices.min(0), data.vertices.max(0)
            self.view.camera.center = tuple(float(c) for c in (lo + hi) / 2)
            self.view.camera.distance = float(np.linalg.norm(hi - lo) * 1.8)
            self._add_plane(lo - self.PLANE_PAD_MM, hi + self.PLANE_PAD_MM)
        if slice_z_mm is not None:
            self.set_slice(slice_z_mm)
        self.canvas.update()

    def _add_plane(self, lo, hi) -> None:
        from vispy.visuals.transforms import STTransform

        x0, y0, x1, y1 = float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])
        quad = np.array([[x0, y0, 0], [x1, y0, 0], [x1, y1, 0], [x0, y1, 0]], np.float32)
        self.plane = self._scene.visuals.Mesh(
            vertices=quad, faces=np.array([[0, 1, 2], [0, 2, 3]], np.uint32),
            color=(1.0, 1.0, 1.0, 0.25), parent=self.view.scene)
        self.plane.set_gl_state("translucent", depth_test=False)
        self.plane.transform = STTransform()

    def set_slice(self, z_mm: float) -> None:
        """Move the plane to world ``z_mm`` (the viewer's axial slice)."""
        self.slice_z_mm = float(z_mm)
        if self.plane is None:
            return
        self.plane.transform.translate = (0.0, 0.0, self.slice_z_mm)  # a uniform only
        self.canvas.update()

    def render(self, size: tuple[int, int] | None = None) -> np.ndarray:
        """The canvas drawn offscreen, RGBA, at its own ``(width, height)`` or ``size``."""
        return self.canvas.render(size=size)

    def close(self) -> None:
        self.canvas.close()
