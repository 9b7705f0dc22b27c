//! File-system session store and cache backend for beaker-rs. (work in progress)
