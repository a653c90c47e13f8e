"""conv1's fused forward (batch 256, 1 thread, min of 30) with ``work`` at each float offset of a
64-byte cache line.  From /tmp: python results/bench-epyc-avx2-2026-12-01-s15/align.py [BUILD]
(BUILD: a checkout built in place, e.g. /tmp/kb/base; default the installed build)."""
import sys, numpy as np, time
if len(sys.argv) > 1 and sys.argv[1]: sys.path.insert(0, sys.argv[1])
from hpclars.kernels import conv
rng=np.random.default_rng(0); n=256
x8=rng.integers(0,256,(n,1,28,28),dtype=np.uint8); x=np.multiply(x8,np.float32(1/255),dtype=np.float32)
w=(rng.standard_normal((6,1,5,5))*0.2).astype(np.float32); b=np.zeros(6,np.float32)
out=np.empty((n,6,14,14),np.float32); idx=np.empty((n,6,14,14),np.uint8)
m=conv.conv2d_pool_relu_work_size(n,1,28,28,6,5,1)
big=np.empty(m+64,np.float32)
base=big.ctypes.data
print("x align", x.ctypes.data%64, "out", out.ctypes.data%64)
for off in range(16):
    sh=((-base//4)+off)%16
    work=big[sh:sh+m]
    ts=[]
    for r in range(30):
        t=time.perf_counter(); conv.conv2d_pool_relu_forward(x,w,b,out,idx,work,1); ts.append(time.perf_counter()-t)
    print(work.ctypes.data%64, "%.3f"%(min(ts)*1e3))
