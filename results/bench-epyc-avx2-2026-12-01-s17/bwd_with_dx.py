"""conv2's fused backward with dx (as training runs it), batch 256, 1 thread, min and median of
REPS calls (default 60), and the share of pooling windows with a nonzero dout * (y > 0).
python results/bench-epyc-avx2-2026-12-01-s17/bwd_with_dx.py BUILD [REPS]"""
import sys, numpy as np, time
if len(sys.argv) > 1 and sys.argv[1]: sys.path.insert(0, sys.argv[1])
from hpclars.kernels import conv
rng=np.random.default_rng(0); n=256
x=rng.random((n,6,14,14),dtype=np.float32); w=(rng.standard_normal((16,6,5,5))*0.1).astype(np.float32); b=np.zeros(16,np.float32)
out=np.empty((n,16,7,7),np.float32); idx=np.empty((n,16,7,7),np.uint8)
g=rng.standard_normal((n,16,7,7)).astype(np.float32)
work=np.empty(conv.conv2d_pool_relu_work_size(n,6,14,14,16,5,1),np.float32)
conv.conv2d_pool_relu_forward(x,w,b,out,idx,work,1)
dw=np.zeros_like(w); db=np.zeros_like(b); dx=np.empty_like(x)
reps=int(sys.argv[2]) if len(sys.argv)>2 else 60
ts=[]
for _ in range(reps):
    t=time.perf_counter(); conv.conv2d_pool_relu_backward(x,w,out,idx,g,dx,dw,db,work,1); ts.append(time.perf_counter()-t)
ts=np.array(ts)*1e3
print("bwd with dx min %.3f med %.3f"%(ts.min(), np.median(ts)), sys.argv[1][-4:], "nonzero windows %.2f" % ((g*(out>0)!=0).mean()))
