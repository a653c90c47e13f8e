"""conv1's fused forward, batch 256, 1 thread, float32 and uint8 input one after the other, min of 100 each;
this build, or a checkout built in place at the given path.  Alternate: python results/bench-xeon-2026-12-01/conv1_fwd_min.py ""; (cd /tmp && python /work/main/results/bench-xeon-2026-12-01/conv1_fwd_min.py /tmp/kb/base)"""
import sys, numpy as np, time
if sys.argv[1]: sys.path.insert(0, sys.argv[1])
from hpclars.kernels import conv
rng=np.random.default_rng(0); n=256
x8=rng.integers(0,256,(n,1,28,28),dtype=np.uint8); x=np.multiply(x8,np.float32(1/255),dtype=np.float32)
w=(rng.standard_normal((6,1,5,5))*0.2).astype(np.float32); b=np.zeros(6,np.float32)
out=np.empty((n,6,14,14),np.float32); idx=np.empty((n,6,14,14),np.uint8)
work=np.empty(conv.conv2d_pool_relu_work_size(n,1,28,28,6,5,1),np.float32)
ts=[];tu=[]
for r in range(100):
    t=time.perf_counter(); conv.conv2d_pool_relu_forward(x,w,b,out,idx,work,1); ts.append(time.perf_counter()-t)
    t=time.perf_counter(); conv.conv2d_pool_relu_forward(x8,w,b,out,idx,work,1,1/255); tu.append(time.perf_counter()-t)
print(("base " if sys.argv[1] else "new  ")+"min f32 %.3f u8 %.3f"%(min(ts)*1e3,min(tu)*1e3))
