;; Hog: grows its memory a MiB at a time until refused, then traps. Stopped by the memory
;; limit long before it reaches WebAssembly's own 4 GiB.
(module
  (memory (export "memory") 1)
  (func (export "_start")
    (loop $more
      (br_if $more (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    unreachable))
