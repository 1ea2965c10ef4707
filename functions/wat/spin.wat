;; Spin: loops forever. Stopped by the wall-clock limit or by fuel, whichever comes first.
(module
  (memory (export "memory") 1)
  (func (export "_start")
    (loop $forever (br $forever))))
