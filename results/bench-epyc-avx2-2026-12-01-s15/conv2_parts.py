"""conv2's fused passes, batch 256, 1 thread, min of 40 each: the backward pass without dx (weight
gradient, pooling and ReLU backward), with dx (the difference is dx), the forward pass.  From
/tmp: python results/bench-epyc-avx2-2026-12-01-s15/conv2_parts.py [BUILD]."""
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
def tmin(f, r=40):
    ts=[]
    for _ in range(r):
        t=time.perf_counter(); f(); ts.append(time.perf_counter()-t)
    return min(ts)*1e3
fl=2*16*6*25*196*n/1e9
a=tmin(lambda: conv.conv2d_pool_relu_backward(x,w,out,idx,g,None,dw,db,work,1))
c=tmin(lambda: conv.conv2d_pool_relu_backward(x,w,out,idx,g,dx,dw,db,work,1))
f=tmin(lambda: conv.conv2d_pool_relu_forward(x,w,b,out,idx,work,1))
print("fused bwd no dx %.3f ms (%.1f GF/s)  with dx %.3f ms  -> dx %.3f ms (%.1f GF/s); fwd %.3f (%.1f)"%(a,fl/a*1e3,c,c-a,fl/(c-a)*1e3,f,fl/f*1e3))
