export * from '../dist/next-config.js'
