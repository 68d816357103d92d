/**
 * Stage steps render templates with the config package's Go-template engine (the validator
 * uses the same one, so what validates renders).
 */
export { randomString, renderTemplate, type TemplateData, TemplateError } from "../../config/index.js";
