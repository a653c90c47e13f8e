"""conv1's fused forward (1 -> 6 channels, 28 x 28, uint8 pixels scaled in the kernel, as the trainer's
evaluation runs it), batch 256, 1 thread, min and median of REPS calls (default 100).
python results/bench-epyc-avx2-2026-12-01-s18/conv1_fwd.py [BUILD] [REPS]   (from /tmp; BUILD: a checkout
built in place; none or "": the installed hpclars)"""
import sys, numpy as np, time
if len(sys.argv) > 1 and sys.argv[1]: sys.path.insert(0, sys.argv[1])
from hpclars.kernels import conv
rng=np.random.default_rng(0); n=256
x8=rng.integers(0,256,(n,1,28,28),dtype=np.uint8); w=(rng.standard_normal((6,1,5,5))*0.1).astype(np.float32); b=np.zeros(6,np.float32)
out=np.empty((n,6,14,14),np.float32); idx=np.empty((n,6,14,14),np.uint8)
work=np.empty(conv.conv2d_pool_relu_work_size(n,1,28,28,6,5,1),np.float32)
reps=int(sys.argv[2]) if len(sys.argv)>2 else 100
ts=[]
for _ in range(reps):
    t=time.perf_counter(); conv.conv2d_pool_relu_forward(x8,w,b,out,idx,work,1,np.float32(1/255)); ts.append(time.perf_counter()-t)
print(("base " if len(sys.argv) > 1 and sys.argv[1] else "this ") + "conv1 fwd (uint8) min %.3f ms med %.3f"%(min(ts)*1e3, np.median(ts)*1e3))
