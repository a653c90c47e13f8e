"""conv2's fused forward (6 -> 16 channels, 14 x 14), batch 256, 1 thread, min and median of REPS
calls (default 60).
python results/bench-epyc-avx2-2026-12-01-s18/conv2_fwd.py [BUILD] [REPS]   (from /tmp; BUILD as conv1_fwd.py)"""
import sys, numpy as np, time
if len(sys.argv) > 1 and sys.argv[1]: sys.path.insert(0, sys.argv[1])
from hpclars.kernels import conv
rng=np.random.default_rng(0); n=256
x=rng.random((n,6,14,14),dtype=np.float32); w=(rng.standard_normal((16,6,5,5))*0.1).astype(np.float32); b=np.zeros(16,np.float32)
out=np.empty((n,16,7,7),np.float32); idx=np.empty((n,16,7,7),np.uint8)
work=np.empty(conv.conv2d_pool_relu_work_size(n,6,14,14,16,5,1),np.float32)
reps=int(sys.argv[2]) if len(sys.argv)>2 else 60
ts=[]
for _ in range(reps):
    t=time.perf_counter(); conv.conv2d_pool_relu_forward(x,w,b,out,idx,work,1); ts.append(time.perf_counter()-t)
print(("base " if len(sys.argv) > 1 and sys.argv[1] else "this ") + "conv2 fwd min %.3f ms med %.3f"%(min(ts)*1e3, np.median(ts)*1e3))
