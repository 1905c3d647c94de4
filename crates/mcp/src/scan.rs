//! Offline scanning of MCP tool definitions and client configurations.
