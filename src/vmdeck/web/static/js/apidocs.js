// The API reference page: Swagger UI (vendored, served from /static) over vmdeck's own OpenAPI document.
// "Try it out" runs in this signed-in session, so changes carry the page's CSRF token.
import { csrfToken } from './common.js';

window.SwaggerUIBundle({
  url: '/api/openapi.json',
  dom_id: '#swagger-ui',
  deepLinking: true,
  requestInterceptor: (request) => {
    if (request.method && request.method !== 'GET') request.headers['X-CSRF-Token'] = csrfToken;
    return request;
  },
});
