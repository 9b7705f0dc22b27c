//! Redis (single node, Cluster, Sentinel) session store and cache backend for beaker-rs. (work in progress)
