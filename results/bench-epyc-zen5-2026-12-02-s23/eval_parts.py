# Evaluation part by part per 256 images, 1 thread (min / median of 200 alternating rounds): python eval_parts.py (PYTHONPATH picks the build)
import time, numpy as np
from hpclars.model import LeNet, LAYOUT, init_params, IMAGE_SHAPE
from hpclars.data import load_mnist, PIXEL_SCALE
import hpclars.kernels as K
print(K.__file__, "winograd", K.CONV_WINOGRAD)
d = load_mnist(download=False)
flat = np.zeros(LAYOUT.size, np.float32); init_params(flat, 0)
p = LAYOUT.views(flat)
n = 256
m = LeNet(K, n, 1)
x = d.test_images[:n].reshape(n, *IMAGE_SHAPE)
p1, p2, h1, h2, lg = m.p1[:n], m.p2[:n], m.h1[:n], m.h2[:n], m.logits[:n]
parts = {
 "conv1": lambda: K.conv2d_pool_relu_forward(x, p["conv1.w"], p["conv1.b"], p1, None, m.work, 1, PIXEL_SCALE),
 "conv2": lambda: K.conv2d_pool_relu_forward(p1, p["conv2.w"], p["conv2.b"], p2, None, m.work, 1),
 "fc1": lambda: K.dense_forward(p2.reshape(n, 784), p["fc1.w"], p["fc1.b"], h1, 1),
 "fc2+3+relu": lambda: (K.relu_forward(h1, h1, 1), K.dense_forward(h1, p["fc2.w"], p["fc2.b"], h2, 1), K.relu_forward(h2, h2, 1), K.dense_forward(h2, p["fc3.w"], p["fc3.b"], lg, 1)),
 "xent": lambda: K.softmax_xent(lg, d.test_labels[:n], None, 1.0, 1),
 "evaluate": lambda: m.evaluate(p, d.test_images[:n], d.test_labels[:n]),
}
ts = {k: [] for k in parts}
for r in range(200):
    for k, f in parts.items():
        f(); t = time.perf_counter(); f(); ts[k].append(time.perf_counter() - t)
for k, v in ts.items():
    print(f"{k:>12} {1e3*min(v):7.3f} {1e3*np.median(v):7.3f} ms")
