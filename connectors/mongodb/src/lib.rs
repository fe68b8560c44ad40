//! MongoDB change streams for Tributary (work in progress).
