"""Sets the Cognito app client's OAuth settings: flows, scopes, identity providers, callback and sign-out URLs (the
custom resource SignInClientSettings, template.yaml). They name the API, which CloudFormation can only make after
the client whose id the functions carry, so the client is made bare and configured here once the API exists."""

from typing import Any

from echo_control import custom_resource
from echo_control.observability import logger

# What UpdateUserPoolClient would reset to its default if left out: kept as the client has it.
KEPT = (
    "ClientName",
    "RefreshTokenValidity",
    "AccessTokenValidity",
    "IdTokenValidity",
    "TokenValidityUnits",
    "ReadAttributes",
    "WriteAttributes",
    "ExplicitAuthFlows",
    "AnalyticsConfiguration",
    "PreventUserExistenceErrors",
    "EnableTokenRevocation",
    "EnablePropagateAdditionalUserContextData",
    "AuthSessionValidity",
    "RefreshTokenRotation",
)
SET = ("AllowedOAuthFlows", "AllowedOAuthScopes", "SupportedIdentityProviders", "CallbackURLs", "LogoutURLs")


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return custom_resource.answer(event, context, configure, "sign-in-client-settings")


def configure(properties: dict[str, Any]) -> dict[str, Any]:
    import boto3  # the Lambda runtime's; imported here so the module loads without it

    cognito = boto3.client("cognito-idp")
    ids = {"UserPoolId": properties["UserPoolId"], "ClientId": properties["ClientId"]}
    current = cognito.describe_user_pool_client(**ids)["UserPoolClient"]
    settings = {key: current[key] for key in KEPT if key in current}
    settings |= {key: properties[key] for key in SET}
    cognito.update_user_pool_client(**ids, **settings, AllowedOAuthFlowsUserPoolClient=True)
    logger.info("sign-in client configured", extra={"callbacks": properties["CallbackURLs"]})
    return {"ClientId": properties["ClientId"]}
